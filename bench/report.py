"""Targets of issue 6, the Markdown summary and the chart, all from a run's results."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TARGET_BACKEND = "sqlite"
TAIL_FACTOR = 5.0
MEMORY_LIMIT_MB = 200.0


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    required: str
    passed: bool | None  # None: not measured in this run


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def mean_latency_ms(figures: dict) -> float:
    """Little's law: with every connection always waiting on a request, the mean latency is connections over
    throughput. wrk's own mean leaves out nothing, but this is what the target names."""
    return figures["connections"] / figures["requests_per_second"] * 1000


def tail_ratio(figures: dict) -> float:
    return figures["p99_ms"] / mean_latency_ms(figures)


def evaluate_targets(run: dict) -> list[Target]:
    backend = run["backends"].get(TARGET_BACKEND, {})
    scenarios = backend.get("scenarios", {})
    baselines = run["baselines"]

    def rps(figures: dict | None) -> float | None:
        return figures["requests_per_second"] if figures else None

    def target(name: str, value: float | None, required: str, check, shown: str = "{:.2f}") -> Target:
        if value is None:
            return Target(name, "not measured", required, None)
        return Target(name, shown.format(value), required, bool(check(value)))

    targets = [
        target("create: x framework ceiling", _ratio(rps(scenarios.get("create")), rps(baselines.get("framework"))),
               ">= 0.5", lambda v: v >= 0.5),
        target("latest 50: x serialization ceiling",
               _ratio(rps(scenarios.get("latest")), rps(baselines.get("serialization"))), ">= 0.7",
               lambda v: v >= 0.7),
    ]
    tails = {name: tail_ratio(figures) for name, figures in scenarios.items() if figures.get("requests")}
    worst = max(tails, key=tails.get) if tails else None
    targets.append(target(f"tail: p99 / mean latency (worst: {worst})", tails.get(worst) if worst else None,
                          f"<= {TAIL_FACTOR:g}", lambda v: v <= TAIL_FACTOR))
    for name in ("framework", "framework-stock-worker"):
        figures = baselines.get(name)
        targets.append(target(f"tail of the {name} baseline (for reference): p99 / mean latency",
                              tail_ratio(figures) if figures else None, f"<= {TAIL_FACTOR:g}",
                              lambda v: v <= TAIL_FACTOR))
    hot = scenarios.get("hot")
    targets.append(target("hot channel: store calls per request", hot.get("store_calls_per_request") if hot else None,
                          "<= 0.1", lambda v: v <= 0.1, "{:.3f}"))
    targets.append(target("hot channel: x throughput with coalescing off",
                          _ratio(rps(hot), rps(scenarios.get("hot-uncoalesced"))), ">= 2", lambda v: v >= 2))
    targets.append(target("flat history: cost of 50 before 3 years back / latest 50",
                          _ratio(rps(scenarios.get("latest")), rps(scenarios.get("deep"))), "<= 1.5",
                          lambda v: v <= 1.5))
    targets.append(target("sparse channel: store queries for a page", backend.get("sparse_page_statements"),
                          "<= 3", lambda v: v <= 3, "{:.0f}"))
    memory = backend.get("memory")
    targets.append(target(f"memory per worker at {memory['connections'] if memory else 1000} idle connections (MB)",
                          memory["max_rss_mb"] if memory else None, f"< {MEMORY_LIMIT_MB:g}",
                          lambda v: v < MEMORY_LIMIT_MB, "{:.0f}"))
    return targets


HOT_WRITE_RATIO = 0.8


def backend_targets(run: dict) -> list[Target]:
    """Issue 17's targets for every backend measured: ratios to the backend's storage ceilings, CPU per request,
    one busy channel against the same load over 64 channels."""
    targets = []
    for backend, outcome in run["backends"].items():
        if "skipped" not in outcome:
            targets += _targets_of(backend, outcome)
    return targets


def _targets_of(backend: str, outcome: dict) -> list[Target]:
    scenarios = outcome.get("scenarios", {})
    ceilings = outcome.get("ceilings", {})

    def rps(figures: dict | None) -> float | None:
        return figures["requests_per_second"] if figures else None

    def cpu(name: str, figures_by_name: dict | None = None) -> float | None:
        figures = (scenarios if figures_by_name is None else figures_by_name).get(name)
        return figures.get("net_cpu_ms_per_request", figures["cpu_ms_per_request"]) if figures else None

    def target(name: str, value: float | None, required: str, check, shown: str = "{:.2f}") -> Target:
        name = f"{backend}: {name}"
        if value is None:
            return Target(name, "not measured", required, None)
        return Target(name, shown.format(value), required, bool(check(value)))

    open_loop = outcome.get("open_loop", {})
    return [
        target("open loop at 50% of max: p99 latest page (ms)", (open_loop.get("latest") or {}).get("p99_ms"),
               "<= 20", lambda v: v <= 20, "{:.1f}"),
        target("open loop at 50% of max: p99 create (ms)", (open_loop.get("create") or {}).get("p99_ms"),
               "<= 30", lambda v: v <= 30, "{:.1f}"),
        target("create: x the storage ceiling's insert",
               _ratio(rps(scenarios.get("create")), rps(ceilings.get("insert"))), ">= 0.7", lambda v: v >= 0.7),
        target("create: x the storage ceiling's insert, by net CPU per request (ceiling's / create's)",
               _ratio(cpu("insert", ceilings), cpu("create")), ">= 0.7", lambda v: v >= 0.7),
        target("latest page: x the storage ceiling's page (SELECT + serialization)",
               _ratio(rps(scenarios.get("latest")), rps(ceilings.get("page"))), ">= 0.5", lambda v: v >= 0.5),
        target("uncached page: x the storage ceiling's page, by net CPU per request",
               _ratio(cpu("page", ceilings), cpu("uncached")), ">= 0.5", lambda v: v >= 0.5),
        target("rate limits counted (shared) x off, latest page",
               _ratio(rps(scenarios.get("latest-limited")), rps(scenarios.get("latest"))), ">= 0.9",
               lambda v: v >= 0.9),
        target("rate limits counted (shared) x off, latest page, by net CPU per request",
               _ratio(cpu("latest"), cpu("latest-limited")), ">= 0.9", lambda v: v >= 0.9),
        target("hot-write: one channel x the same load over 64 channels",
               _ratio(rps(scenarios.get("hot-write")), rps(scenarios.get("create"))), f">= {HOT_WRITE_RATIO}",
               lambda v: v >= HOT_WRITE_RATIO),
        target("worker CPU ms per create (net)", cpu("create"), "<= 1.5", lambda v: v <= 1.5),
        target("worker CPU ms per uncached page of 50 (net)", cpu("uncached"), "<= 1.5", lambda v: v <= 1.5),
        target("worker CPU ms per cached page of 50 (net)", cpu("latest"), "<= 0.8", lambda v: v <= 0.8),
    ]


def _row(label: str, figures: dict, framework: dict | None, serialization: dict | None) -> str:
    def times(baseline: dict | None) -> str:
        ratio = _ratio(figures["requests_per_second"], baseline["requests_per_second"] if baseline else None)
        return "" if ratio is None else f"{ratio:.2f}"

    calls = figures.get("store_calls_per_request")
    return (f"| {label} | {figures['connections']} | {figures['requests_per_second']:.0f} | {times(framework)} | "
            f"{times(serialization)} | {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} | "
            f"{tail_ratio(figures):.1f} | {figures['errors']} | {'' if calls is None else f'{calls:.2f}'} | "
            f"{figures['cpu_ms_per_request']:.2f} | {_optional(figures.get('net_cpu_ms_per_request'))} | "
            f"{_optional(figures.get('db_cpu_ms_per_request'))} | {_optional(figures.get('lock_waiters'))} |")


def _optional(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def markdown(run: dict, chart_name: str) -> str:
    baselines = run["baselines"]
    settings = run["settings"]
    lines = [
        f"# Benchmark {run['started_at']}",
        "",
        f"{settings['workers']} gunicorn gevent workers, {settings['connections']} connections (hot channel: its "
        f"own count), {settings['duration']:g} s per scenario after {settings['warmup']:g} s of warm-up, "
        f"{settings['history_size']:,} messages in the long channel, EVENT_BUS "
        f"{settings.get('event_bus') or 'as the settings default it'}. {run['machine']['cpus']} CPUs, load average "
        f"{run['machine']['load_average_at_start'][0]:.1f} at the start; the run took {run['seconds']:.0f} s.",
        "",
        _drift_note(run),
        "",
        "Ratios are to the baselines of this run at the same connection count: x framework = throughput over the "
        "framework ceiling's, x serialization = over the serialization ceiling's. p99 / mean is p99 over the "
        "mean latency (connections / throughput). Store calls per request reached the backend (coalesced reads "
        "excluded). CPU ms / req is the workers' CPU time (from /proc) over the requests answered: the figure "
        "that the rest of the machine's load distorts least; net, less the CPU the workers spend idle (sampled "
        "for 2 s before), which weighs at low throughput. DB CPU ms / req is the same for the local PostgreSQL's "
        "backends serving the service's database (its shared WAL writer and checkpointer not counted); lock "
        "waiters the sessions waiting on a lock, on average (sampled every 50 ms).",
        "",
        "| scenario | conns | req/s | x framework | x serialization | p50 ms | p99 ms | p99 / mean | errors | "
        "store calls / req | CPU ms / req | net CPU ms / req | DB CPU ms / req | lock waiters |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, figures in baselines.items():
        connections = figures["connections"]
        framework, serialization = _baselines_at(baselines, connections)
        lines.append(_row(f"baseline: {name}", figures, framework, serialization))
    for backend, outcome in run["backends"].items():
        if "skipped" in outcome:
            lines.append(f"| {backend}: skipped ({outcome['skipped']}) |||||||||||||")
            continue
        for figures in outcome["scenarios"].values():
            framework, serialization = _baselines_at(baselines, figures["connections"])
            lines.append(_row(f"{backend}: {figures['title']}", figures, framework, serialization))
    lines += ["", "Per backend: SQL statements for one page (sparse channel; 50 before a cursor 3 years back), "
                  "worker memory at idle keep-alive connections.", ""]
    for backend, outcome in run["backends"].items():
        if "skipped" in outcome:
            continue
        memory = outcome.get("memory", {})
        lines.append(f"- {backend}: sparse page {outcome['sparse_page_statements']} statement(s) for "
                     f"{outcome['sparse_messages']} messages over 5 years; deep page "
                     f"{outcome['deep_page_statements']}; max worker RSS {memory.get('max_rss_mb', 'n/a')} MB with "
                     f"{memory.get('answered', 0)} of {memory.get('connections', 0)} connections open "
                     f"(before: {', '.join(f'{v} MB' for v in memory.get('rss_mb_before', {}).values())}); "
                     f"seeded in {outcome['seed_seconds']:.0f} s")
    lines += ["", "Storage ceilings (bench/baseline_app.py's storage_app on the same database, engine and pool): the "
                  "create's INSERT alone, the latest page's SELECT with its serialization.", ""]
    for backend, outcome in run["backends"].items():
        for name, figures in outcome.get("ceilings", {}).items():
            database = figures.get("db_cpu_ms_per_request")
            lines.append(f"- {backend} {name}: {figures['requests_per_second']:.0f} req/s, "
                         f"{figures['cpu_ms_per_request']:.2f} CPU ms / req"
                         + ("" if database is None else f" + {database:.2f} in PostgreSQL")
                         + f", p99 {figures['p99_ms']:.1f} ms")
    lines += ["", "Open loop (bench/open_loop.py): a fixed rate offered, latency from when each request was due.", ""]
    for backend, outcome in run["backends"].items():
        for name, figures in outcome.get("open_loop", {}).items():
            lines.append(f"- {backend} {name} at {figures['offered_per_second']:.0f} req/s "
                         f"({figures['fraction_of_max']:.0%} of its closed-loop maximum): p50 {figures['p50_ms']:.1f} "
                         f"ms, p99 {figures['p99_ms']:.1f} ms, p99.9 {figures['p999_ms']:.1f} ms, "
                         f"{figures['answered']} of {figures['offered']} answered, {figures['errors']} errors")
    profiled = [(backend, figures) for backend, outcome in run["backends"].items()
                for figures in outcome.get("scenarios", {}).values() if "profile" in figures]
    if profiled:
        lines += ["", "Where the workers' CPU goes (`--profile`: py-spy on the workers during a second run of each "
                      "scenario; each layer's share of the on-CPU samples, a sample counted for the innermost "
                      "layer of its stack; the raw stacks are the files named):", ""]
        for backend, figures in profiled:
            profile = figures["profile"]
            layers = ", ".join(f"{name} {share:.0%}" for name, share in
                               sorted(profile["layers"].items(), key=lambda item: -item[1]) if share >= 0.02)
            lines.append(f"- {backend}: {figures['title']} ({profile['samples']} samples, {profile['raw']}): {layers}")
    lines += ["", f"## Targets (issue 6: {TARGET_BACKEND}; issue 17: each backend)", "",
              "| target | measured | required | result |", "|---|---:|---:|---|"]
    for target in run["targets"] + run.get("backend_targets", []):
        result = {True: "PASS", False: "FAIL", None: "not measured"}[target["passed"]]
        lines.append(f"| {target['name']} | {target['measured']} | {target['required']} | {result} |")
    lines += ["", f"![throughput and p99 by scenario]({chart_name})", ""]
    return "\n".join(lines)


def _drift_note(run: dict) -> str:
    start = run["baselines"].get("framework")
    end = run.get("drift", {}).get("framework-at-end")
    if not start or not end:
        return "No drift check in this run."
    ratio = end["requests_per_second"] / start["requests_per_second"]
    return (f"Drift: the framework ceiling measured again at the end gave {end['requests_per_second']:.0f} req/s, "
            f"{ratio:.2f} x its figure at the start; ratios in between carry about that much uncertainty.")


def _baselines_at(baselines: dict, connections: int) -> tuple[dict | None, dict | None]:
    """The baselines measured at ``connections`` (the default count's carry no suffix)."""
    def pick(name: str) -> dict | None:
        at = baselines.get(f"{name}@{connections}")
        plain = baselines.get(name)
        return at or (plain if plain and plain["connections"] == connections else None)
    return pick("framework"), pick("serialization")


def chart(run: dict, path: Path) -> bool:
    """Throughput and p99 per scenario and backend, with the baselines as horizontal lines; False (and no chart)
    without matplotlib (the bench extra), rather than losing the run's summary."""
    try:
        import matplotlib
    except ImportError:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')", flush=True)
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = [b for b, outcome in run["backends"].items() if "scenarios" in outcome]
    names = list(dict.fromkeys(n for b in backends for n in run["backends"][b]["scenarios"]))
    figure, (throughput, tail) = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.8 / max(len(backends), 1)
    for index, backend in enumerate(backends):
        scenarios = run["backends"][backend]["scenarios"]
        positions = [n + index * width for n in range(len(names))]
        throughput.bar(positions, [scenarios.get(n, {}).get("requests_per_second", 0) for n in names], width,
                       label=backend)
        tail.bar(positions, [scenarios.get(n, {}).get("p99_ms", 0) for n in names], width, label=backend)
    styles = {"framework": ("black", "--"), "serialization": ("grey", ":"), "framework-stock-worker": ("red", "-.")}
    for name, figures in run["baselines"].items():
        color, style = styles[name.split("@")[0]]
        label = f"{name} ceiling ({figures['connections']} conns)"
        throughput.axhline(figures["requests_per_second"], color=color, linestyle=style, linewidth=1, label=label)
        tail.axhline(figures["p99_ms"], color=color, linestyle=style, linewidth=1, label=label)
    # Log scales: the service and the ceilings can be orders of magnitude apart, and ratios read as distances.
    for axes, title, unit in ((throughput, "Throughput", "requests / s (log)"), (tail, "p99 latency", "ms (log)")):
        axes.set_title(title)
        axes.set_ylabel(unit)
        axes.set_yscale("log")
        axes.set_xticks([n + width * (len(backends) - 1) / 2 for n in range(len(names))], names, rotation=30,
                        ha="right")
    handles, labels = throughput.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize="small")
    figure.suptitle(f"chatstore benchmark {run['started_at']} ({run['settings']['workers']} workers)")
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
