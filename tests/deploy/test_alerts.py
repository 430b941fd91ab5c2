"""The example alert rules (deploy/prometheus/alerts.yaml), checked offline.

Everywhere: the rule file's structure, every expression through a PromQL parser (promql-parser, from PyPI), and
every metric an expression names against the metrics the service defines. With promtool (Debian's prometheus
package; .ci/run extracts it): ``promtool check rules`` and the rules' unit tests, alerts_test.yaml.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import app.observability.metrics as service_metrics
from tests.deploy.conftest import DEPLOY, require_tool

RULES = DEPLOY / "prometheus" / "alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yaml"
#: What the issue asks alerts for, each with the alert that covers it.
REQUIRED_ALERTS = {"error rate": "ChatstoreHighErrorRate", "p99 latency": "ChatstoreHighLatencyP99",
                   "database pool": "ChatstoreDatabasePoolWaiting", "hub watch": "ChatstoreHubBlocked",
                   "event lag": "ChatstoreEventLag", "indexer lag": "ChatstoreIndexerLag"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def service_metric_names() -> set[str]:
    names = set()
    for value in vars(service_metrics).values():
        if isinstance(value, MetricWrapperBase):
            [described] = value.describe()
            names.update(described.name + suffix for suffix in SUFFIXES[described.type])
    return names


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    found = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        found.extend(group["rules"])
    return found


def test_the_rule_file_has_the_alerts_the_issue_asks_for():
    alerts = {rule["alert"] for rule in rules()}
    assert set(REQUIRED_ALERTS.values()) <= alerts


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_rule_is_well_formed_and_names_only_the_services_metrics(rule):
    assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
    assert "for" not in rule or DURATION.match(rule["for"])
    assert rule["labels"]["severity"] in ("page", "ticket")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
    named = set(re.findall(r"\bchatstore_[a-z_]+\b", rule["expr"]))
    assert named and named <= service_metric_names(), named - service_metric_names()


def test_the_parser_refuses_a_broken_expression():
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(chatstore_http_requests_total[5m])")


def promtool() -> Path:
    configured = os.environ.get("PROMTOOL")
    return require_tool("promtool", Path(configured) if configured else None,
                        "Debian's prometheus package has it (.ci/run extracts it into .tools/; set PROMTOOL)",
                        required_by="REQUIRE_PROMTOOL")


def test_promtool_checks_the_rules():
    result = subprocess.run([str(promtool()), "check", "rules", str(RULES)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should_and_only_then():
    result = subprocess.run([str(promtool()), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
