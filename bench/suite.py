"""Every benchmark, one after another, and one table of what they measured (``make bench``).

    .venv/bin/python bench/suite.py [--quick] [--only NAME,...] [--set NAME="ARGS"]...
        [--out PATH] [--readme PATH | --no-readme] [--timeout SECONDS]

Runs ``transform``, ``load``, ``latency``, ``spike`` and ``personas`` (``bench/<name>.py``)
each in a process of its own, at their goal sizes unless told otherwise, and reads what each
wrote with ``--json``: its figures, its goals and whether each was met. Writes one markdown
table, headed by a description of the machine, to ``--out`` and, after a full run at the goal
sizes, between the markers of the README's "Benchmarks" section. A benchmark that fails,
crashes or runs out of time is a row saying so, never left out. Each benchmark's output and
JSON are kept in ``bench/logs/``. Exit status 1 when a goal was missed or a benchmark did
not finish.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# Run as a script from anywhere: the bench modules import each other from the checkout.
sys.path.insert(0, str(REPO_ROOT))

from bench.harness import ISOLATED_VARIABLES  # noqa: E402
from gtm_orchestration.instance import INSTANCE_TEMPLATE  # noqa: E402

# In the order they run; the arguments are each benchmark's goal size.
GOAL_ARGS: dict[str, list[str]] = {
    "transform": ["--n", "1000000"],
    "load": ["--n", "50000", "--update-pass"],
    "latency": ["--n", "30", "--rate", "1"],
    "spike": ["--n", "3000", "--concurrency", "32"],
    "personas": [],
}
# The smallest sizes that still go through every path (pandas and the comparison, the update
# pass, both deployments of the latency benchmark, the spike's batching): a check in minutes.
QUICK_ARGS: dict[str, list[str]] = {
    "transform": ["--n", "300"],
    "load": ["--n", "300", "--update-pass"],
    "latency": ["--n", "3", "--rate", "1"],
    "spike": ["--n", "200", "--concurrency", "8"],
    "personas": [],
}
RESULTS = BENCH_DIR / "RESULTS.md"
LOGS = BENCH_DIR / "logs"
README = REPO_ROOT / "README.md"
BEGIN_MARKER = "<!-- bench-results:begin (written by make bench; edits here are replaced) -->"
END_MARKER = "<!-- bench-results:end -->"
# A full run at a million leads takes the better part of an hour; this only stops a hang.
DEFAULT_TIMEOUT_S = 4 * 3600
OUTPUT_TAIL_LINES = 40


@dataclass
class Outcome:
    """One benchmark as run: its command, how its process ended and what it reported."""

    name: str
    args: list[str]
    goal_args: list[str]
    exit_status: int | None = None  # None: stopped after the timeout
    seconds: float = 0.0
    report: dict[str, Any] | None = None
    output_tail: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_TAIL_LINES))

    @property
    def command(self) -> str:
        return shlex.join([f"bench/{self.name}.py", *self.args])

    @property
    def at_goal_size(self) -> bool:
        return self.args == self.goal_args

    @property
    def finished(self) -> bool:
        """Reported its figures, and its exit status agrees with its verdict."""
        if self.report is None or self.exit_status is None:
            return False
        return self.exit_status == (0 if self.report["met"] else 1)

    @property
    def met(self) -> bool:
        return self.finished and bool(self.report and self.report["met"])


def script_goal(name: str) -> str:
    """The ``GOAL`` a benchmark script states, read from its source without running it."""
    path = BENCH_DIR / f"{name}.py"
    try:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "GOAL" for target in node.targets
            ):
                return str(ast.literal_eval(node.value))
    except (OSError, SyntaxError, ValueError) as error:
        return f"(not readable from {path.name}: {error})"
    return f"(not stated in {path.name})"


def run_benchmark(
    name: str, args: list[str], goal_args: list[str], logs: Path, timeout_s: float
) -> Outcome:
    """Run ``bench/<name>.py`` with ``args`` and ``--json``, its output shown and kept in
    ``logs/<name>.log``; stop it (SIGINT, then SIGKILL) after ``timeout_s``."""
    outcome = Outcome(name, args, goal_args)
    json_path, log_path = logs / f"{name}.json", logs / f"{name}.log"
    json_path.unlink(missing_ok=True)
    command = [sys.executable, str(BENCH_DIR / f"{name}.py"), *args, "--json", str(json_path)]
    print(f"\n=== {outcome.command}", flush=True)
    started = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # Its own group, so that stopping it reaches its sandbox, daemon and run workers.
            start_new_session=True,
        )
        reader = threading.Thread(target=_relay, args=(process, log, outcome.output_tail))
        reader.start()
        try:
            outcome.exit_status = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(process)
        except KeyboardInterrupt:
            _stop(process)
            raise
        finally:
            reader.join()
    outcome.seconds = time.monotonic() - started
    if outcome.exit_status is None:
        outcome.output_tail.append(f"stopped after {timeout_s:.0f} s")
    try:
        outcome.report = json.loads(json_path.read_text())
    except (OSError, ValueError):
        outcome.report = None
    return outcome


def _relay(process: subprocess.Popen[str], log: TextIO, tail: deque[str]) -> None:
    """Copy the benchmark's output to the terminal and its log, keeping the last lines."""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        log.write(line)
        tail.append(line.rstrip("\n"))


def _stop(process: subprocess.Popen[str]) -> None:
    """Interrupt the benchmark's process group as Ctrl-C would, so it stops what it started;
    kill whatever is left a minute later."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def machine_description(started: datetime, seconds: float, load_average: float) -> list[str]:
    """What the figures were measured on, one ``name: value`` line each."""
    return [
        f"CPU: {_cpu_model()}, {os.cpu_count()} CPUs",
        f"memory: {_memory_gib():.1f} GiB",
        f"OS: {_os_name()} (Linux {platform.release()})",
        f"Python: {platform.python_version()}",
        "versions: "
        + ", ".join(
            f"{label} {_version(package)}"
            for label, package in (
                ("DuckDB", "duckdb"),
                ("Dagster", "dagster"),
                ("dbt-core", "dbt-core"),
                ("dbt-duckdb", "dbt-duckdb"),
            )
        ),
        f"Dagster instance: {_instance_kind()}",
        "warehouse: DuckDB, a fresh file in each benchmark's temporary folder",
        "services: sandbox CRM, webhook receiver and dagster-daemon on loopback, started by "
        "each benchmark",
        f"date: {started:%Y-%m-%d %H:%M} UTC; the suite took {_duration(seconds)}; "
        f"1-minute load average {load_average:.2f} before it started, "
        f"{os.getloadavg()[0]:.2f} at its end",
    ]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _instance_kind() -> str:
    """The storage of the instances the deployments get: the repository's dagster.yaml in a
    fresh DAGSTER_HOME, without DAGSTER_PG_URL."""
    storage = (yaml.safe_load(INSTANCE_TEMPLATE.read_text()) or {}).get("storage")
    kind = "SQLite" if not storage else f"as {INSTANCE_TEMPLATE.name} configures ({storage})"
    passed = "" if "DAGSTER_PG_URL" not in ISOLATED_VARIABLES else "; DAGSTER_PG_URL not passed on"
    return f"{kind}, in a fresh DAGSTER_HOME per benchmark ({INSTANCE_TEMPLATE.name}{passed})"


def results_markdown(outcomes: list[Outcome], machine: list[str]) -> str:
    """The machine, the sizes and one row per benchmark, as markdown."""
    reduced = [outcome for outcome in outcomes if not outcome.at_goal_size]
    missing = [name for name in GOAL_ARGS if name not in {o.name for o in outcomes}]
    lines = ["Measured by `make bench` (`bench/suite.py`) on this machine:", ""]
    lines += [f"- {line}" for line in machine]
    if reduced:
        lines.append(
            "- sizes: **not the goal sizes** for "
            + ", ".join(f"{o.name} (`{o.command}`)" for o in reduced)
            + "; their verdicts do not say whether the goals are met at the goal sizes"
        )
    else:
        lines.append("- sizes: every benchmark that ran was at its goal size")
    if missing:
        lines.append(f"- not run this time: {', '.join(missing)}")
    lines += [
        "",
        "| benchmark | command | figures | goal | met |",
        "|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        cells = [outcome.name, f"`{outcome.command}`", _figures(outcome), _goal(outcome)]
        lines.append("| " + " | ".join(_cell(c) for c in [*cells, _verdict(outcome)]) + " |")
    return "\n".join(lines) + "\n"


def _figures(outcome: Outcome) -> str:
    report = outcome.report
    if report is not None and outcome.finished:
        return f"{report['summary']} ({_duration(outcome.seconds)} in all)"
    if outcome.exit_status is None:
        problem = f"did not finish: stopped after {outcome.seconds:.0f} s"
    else:
        problem = f"exited with status {outcome.exit_status}"
        if report is not None:
            problem += f" although it reported the goal {'met' if report['met'] else 'missed'}"
    last = [line.strip() for line in outcome.output_tail if line.strip()]
    detail = f"; last output: `{last[-1][:200]}`" if last else ""
    reported = f"; reported: {report['summary']}" if report is not None else ""
    return f"**error**: {problem}{detail}{reported} (its output: `{outcome.name}.log`)"


def _goal(outcome: Outcome) -> str:
    return str(outcome.report["goal"]) if outcome.report else script_goal(outcome.name)


def _verdict(outcome: Outcome) -> str:
    if not outcome.finished or outcome.report is None:
        return "**error**"
    size = "" if outcome.at_goal_size else ", not at the goal size"
    if outcome.met:
        return f"yes{size}"
    missed = [goal for goal in outcome.report["goals"] if not goal["met"]]
    return f"**no**{size}: " + "; ".join(f"{g['goal']} ({g['measured']})" for g in missed)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def replace_between_markers(document: str, content: str) -> str:
    """``document`` with what lies between the results markers replaced by ``content``.

    Raises ValueError when the markers are missing or out of order."""
    begin, end = document.find(BEGIN_MARKER), document.find(END_MARKER)
    if begin < 0 or end < begin:
        raise ValueError(f"expected the lines {BEGIN_MARKER!r} and, after it, {END_MARKER!r}")
    # A blank line before the end marker, so that the table ends before it.
    return document[: begin + len(BEGIN_MARKER)] + "\n" + content + "\n" + document[end:]


def _arguments(text: str) -> tuple[str, list[str]]:
    name, separator, args = text.partition("=")
    if not separator or name not in GOAL_ARGS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=ARGS with NAME one of {', '.join(GOAL_ARGS)} (found {text!r})"
        )
    return name, shlex.split(args)


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GOAL_ARGS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected benchmark names among {', '.join(GOAL_ARGS)} (found {text!r})"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="the smallest sizes that exercise every path"
    )
    parser.add_argument("--only", type=_names, help="comma-separated benchmarks to run")
    parser.add_argument(
        "--set",
        type=_arguments,
        action="append",
        default=[],
        metavar='NAME="ARGS"',
        help='run benchmark NAME with ARGS instead (e.g. transform="--n 200000")',
    )
    parser.add_argument("--out", type=Path, help="the results file (default: see README)")
    readme = parser.add_mutually_exclusive_group()
    readme.add_argument("--readme", type=Path, help="update this README's table, whatever the run")
    readme.add_argument("--no-readme", action="store_true", help="leave the README alone")
    parser.add_argument(
        "--logs", type=Path, default=LOGS, help="where each benchmark's output and JSON go"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="per benchmark")
    args = parser.parse_args(argv)

    chosen = dict(QUICK_ARGS if args.quick else GOAL_ARGS)
    chosen.update(dict(args.set))
    names = args.only or list(GOAL_ARGS)
    full_run = names == list(GOAL_ARGS) and all(chosen[n] == GOAL_ARGS[n] for n in names)
    # A partial or reduced run never overwrites the results of a full one.
    out = args.out or (RESULTS if full_run else args.logs / "RESULTS.md")
    readme_path = args.readme or (README if full_run and not args.no_readme else None)

    args.logs.mkdir(parents=True, exist_ok=True)
    started_at, started = datetime.now(UTC), time.monotonic()
    load_average = os.getloadavg()[0]
    outcomes = [
        run_benchmark(name, chosen[name], GOAL_ARGS[name], args.logs, args.timeout)
        for name in names
    ]
    machine = machine_description(started_at, time.monotonic() - started, load_average)
    markdown = results_markdown(outcomes, machine)

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Benchmark results\n\n" + markdown)
    print(f"\n{markdown}\nwritten to {out}")
    if readme_path is not None:
        try:
            readme_path.write_text(replace_between_markers(readme_path.read_text(), markdown))
        except ValueError as error:
            print(f"{readme_path}: not updated: {error}", file=sys.stderr)
            return 2
        print(f"and to the Benchmarks section of {readme_path}")
    return 0 if all(outcome.met for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
