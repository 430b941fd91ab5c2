from __future__ import annotations

import dataclasses

import pytest

from config import DEFAULT_SQLITE_PATH, Settings, SettingsError, load_settings


def test_empty_environment_gives_the_defaults():
    settings = load_settings({})

    assert settings == Settings()
    assert settings.database_url == f"sqlite:///{DEFAULT_SQLITE_PATH}"
    assert settings.is_sqlite
    assert settings.message_store == "sql"
    assert settings.bind == "127.0.0.1:8080"
    assert settings.scylla_hosts == ()
    assert settings.max_pins_per_channel == 250
    assert settings.log_level == "INFO"


@pytest.mark.parametrize(
    ("variable", "raw", "attribute", "expected"),
    [
        pytest.param(
            "DATABASE_URL", "postgresql://db/c", "database_url", "postgresql+psycopg2://db/c", id="database-url-pg",
        ),
        pytest.param(
            "DATABASE_URL", "postgresql+psycopg2://db/c", "database_url", "postgresql+psycopg2://db/c",
            id="database-url-psycopg2-driver",
        ),
        pytest.param("DATABASE_URL", "sqlite:///x.db", "database_url", "sqlite:///x.db", id="database-url-sqlite"),
        pytest.param("BIND", "0.0.0.0:8000", "bind", "0.0.0.0:8000", id="bind-ipv4"),
        pytest.param("BIND", "[::1]:8000", "bind", "[::1]:8000", id="bind-ipv6"),
        pytest.param("WEB_WORKERS", "4", "web_workers", 4, id="web-workers"),
        pytest.param("WORKER_CONNECTIONS", "250", "worker_connections", 250, id="worker-connections"),
        pytest.param("DB_POOL_SIZE", "20", "db_pool_size", 20, id="db-pool-size"),
        pytest.param("DB_POOL_TIMEOUT", "2.5", "db_pool_timeout", 2.5, id="db-pool-timeout"),
        pytest.param(
            "DB_STATEMENT_TIMEOUT_MS", "1500", "db_statement_timeout_ms", 1500, id="db-statement-timeout-ms"
        ),
        pytest.param("DB_RESPONSE_TIMEOUT", "12.5", "db_response_timeout", 12.5, id="db-response-timeout"),
        pytest.param("REQUEST_HEADER_TIMEOUT", "3", "request_header_timeout", 3.0, id="request-header-timeout"),
        pytest.param("REQUEST_BODY_TIMEOUT", "4.5", "request_body_timeout", 4.5, id="request-body-timeout"),
        pytest.param("REQUEST_BODY_MIN_RATE", "1024", "request_body_min_rate", 1024, id="request-body-min-rate"),
        pytest.param("KEEPALIVE_TIMEOUT", "30", "keepalive_timeout", 30.0, id="keepalive-timeout"),
        pytest.param("MAX_CONNECTIONS_PER_ADDRESS", "0", "max_connections_per_address", 0,
                     id="max-connections-per-address-off"),
        pytest.param("RATE_LIMIT_INVALID", "100/60", "rate_limit_invalid", "100/60", id="rate-limit-invalid"),
        pytest.param("RATE_LIMIT_INVALID_BURST", "10/1", "rate_limit_invalid_burst", "10/1",
                     id="rate-limit-invalid-burst"),
        pytest.param("SCYLLA_HOSTS", "a, b,,", "scylla_hosts", ("a", "b"), id="scylla-hosts-split-and-trimmed"),
        pytest.param("SCYLLA_PORT", "19042", "scylla_port", 19042, id="scylla-port"),
        pytest.param("SCYLLA_KEYSPACE", "chat_test", "scylla_keyspace", "chat_test", id="scylla-keyspace"),
        pytest.param("SCYLLA_LOCAL_DC", "eu-west", "scylla_local_dc", "eu-west", id="scylla-local-dc"),
        pytest.param("SCYLLA_CONSISTENCY", "QUORUM", "scylla_consistency", "QUORUM", id="scylla-consistency"),
        pytest.param("SCYLLA_REPLICATION_FACTOR", "1", "scylla_replication_factor", 1, id="scylla-replication-factor"),
        pytest.param("SCYLLA_REQUEST_TIMEOUT", "0.75", "scylla_request_timeout", 0.75, id="scylla-request-timeout"),
        pytest.param("SCYLLA_CONNECT_TIMEOUT", "10", "scylla_connect_timeout", 10.0, id="scylla-connect-timeout"),
        pytest.param("NONCE_TTL_SECONDS", "300", "nonce_ttl_seconds", 300, id="nonce-ttl-seconds"),
        pytest.param("MAX_PINS_PER_CHANNEL", "50", "max_pins_per_channel", 50, id="max-pins-per-channel"),
        pytest.param("LOG_LEVEL", "DEBUG", "log_level", "DEBUG", id="log-level"),
        pytest.param("WEB_WORKERS", " 3 ", "web_workers", 3, id="surrounding-whitespace-stripped"),
    ],
)
def test_environment_variable_is_parsed(variable, raw, attribute, expected):
    settings = load_settings({variable: raw})
    assert getattr(settings, attribute) == expected
    unchanged = {field.name for field in dataclasses.fields(Settings)} - {attribute}
    assert {name: getattr(settings, name) for name in unchanged} == {
        name: getattr(Settings(), name) for name in unchanged
    }


def test_postgres_scheme_is_normalised_for_sqlalchemy():
    settings = load_settings({"DATABASE_URL": "postgres://app:pw@db/chat"})
    assert settings.database_url == "postgresql+psycopg2://app:pw@db/chat"
    assert not settings.is_sqlite


def test_empty_variable_counts_as_unset():
    assert load_settings({"WEB_WORKERS": "", "DATABASE_URL": ""}) == Settings()


def test_os_environ_is_read_when_no_mapping_is_given(monkeypatch):
    monkeypatch.setenv("WEB_WORKERS", "7")
    assert load_settings().web_workers == 7


def test_overrides_win_over_the_environment():
    assert load_settings({"WEB_WORKERS": "4"}, web_workers=9).web_workers == 9


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        pytest.param("DATABASE_URL", "mysql://db/chat", id="database-url-other-scheme"),
        pytest.param("MESSAGE_STORE", "mongo", id="message-store-unknown"),
        pytest.param("BIND", "8080", id="bind-without-host"),
        pytest.param("BIND", ":8080", id="bind-empty-host"),
        pytest.param("BIND", "localhost:0", id="bind-port-zero"),
        pytest.param("BIND", "localhost:65536", id="bind-port-too-large"),
        pytest.param("BIND", "localhost:http", id="bind-port-not-numeric"),
        pytest.param("WEB_WORKERS", "0", id="int-zero"),
        pytest.param("DB_POOL_SIZE", "-1", id="int-negative"),
        pytest.param("SCYLLA_PORT", "9042.0", id="int-with-decimal-point"),
        pytest.param("WORKER_CONNECTIONS", "many", id="int-not-numeric"),
        pytest.param("DB_POOL_TIMEOUT", "0", id="float-zero"),
        pytest.param("SCYLLA_REQUEST_TIMEOUT", "soon", id="float-not-numeric"),
        pytest.param("SCYLLA_HOSTS", " , ", id="hosts-only-separators"),
        pytest.param("SCYLLA_CONSISTENCY", "MOSTLY", id="consistency-unknown"),
        pytest.param("LOG_LEVEL", "VERBOSE", id="log-level-unknown"),
    ],
)
def test_bad_value_is_reported_with_its_variable(variable, raw):
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: raw})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{variable}={raw!r}: ")


def test_one_error_lists_every_bad_value():
    environ = {
        "WEB_WORKERS": "0",
        "DB_POOL_TIMEOUT": "abc",
        "BIND": "nope",
        "SCYLLA_CONSISTENCY": "MOSTLY",
        "LOG_LEVEL": "VERBOSE",
        "DB_POOL_SIZE": "5",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)

    problems = caught.value.problems
    reported = sorted(problem.split("=", 1)[0] for problem in problems)
    assert reported == ["BIND", "DB_POOL_TIMEOUT", "LOG_LEVEL", "SCYLLA_CONSISTENCY", "WEB_WORKERS"]
    assert all(problem in str(caught.value) for problem in problems)
    assert isinstance(caught.value, ValueError)


def test_missing_scylla_hosts_is_reported_alongside_other_problems():
    with pytest.raises(SettingsError) as caught:
        load_settings({"MESSAGE_STORE": "dual", "WEB_WORKERS": "0"})
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("WEB_WORKERS=")
    assert problems[1] == "SCYLLA_HOSTS: required when MESSAGE_STORE=dual"


@pytest.mark.parametrize("store", ["scylla", "dual"])
def test_scylla_backed_stores_require_hosts(store):
    with pytest.raises(SettingsError) as caught:
        load_settings({"MESSAGE_STORE": store})
    assert caught.value.problems == [f"SCYLLA_HOSTS: required when MESSAGE_STORE={store}"]

    settings = load_settings({"MESSAGE_STORE": store, "SCYLLA_HOSTS": "scylla-1"})
    assert (settings.message_store, settings.scylla_hosts) == (store, ("scylla-1",))


def test_scylla_hosts_requirement_also_applies_to_overrides():
    with pytest.raises(SettingsError):
        load_settings({}, message_store="scylla")
    assert load_settings({}, message_store="scylla", scylla_hosts=("h",)).scylla_hosts == ("h",)


def test_settings_are_frozen_and_replace_returns_a_copy():
    settings = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.web_workers = 3

    changed = settings.replace(web_workers=3)
    assert changed.web_workers == 3
    assert settings.web_workers == Settings().web_workers


def test_a_response_timeout_within_the_statement_timeout_is_refused():
    with pytest.raises(SettingsError, match="DB_RESPONSE_TIMEOUT must exceed DB_STATEMENT_TIMEOUT_MS"):
        load_settings({"DB_STATEMENT_TIMEOUT_MS": "8000"})
    assert load_settings({"DB_STATEMENT_TIMEOUT_MS": "8000", "DB_RESPONSE_TIMEOUT": "9"}).db_response_timeout == 9.0
