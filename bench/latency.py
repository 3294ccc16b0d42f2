"""Latency of a form webhook to a readable CRM contact, against the floor of the same path.

    .venv/bin/python bench/latency.py [--n 30] [--rate 1.0] [--json PATH]

Posts ``--n`` signed form submissions at ``--rate`` a second to a fresh local deployment and
measures, for each, the time from its POST to the contact being readable through the CRM
search API. The floor is the same measurement for ``bench/floor_definitions.py``: a trivial
asset behind a sensor with the project's webhook sensor settings, on the same instance
settings, POST to "asset ran". Each part runs in a deployment of its own, so neither queues
behind the other's runs. Prints p50, p95 and max of both, the ratio of the p95s and whether
the goal (every event arrives; p95 at most 10 s and at most 1.5 times the floor's) is met.
Exit status 1 when it is not.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script from anywhere: the bench modules import each other from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.floor_definitions import (  # noqa: E402
    FLOOR_SOURCE,
    WEBHOOK_SENSOR,
    ReferenceSensor,
    bench_floor_sensor,
    read_floor_records,
)
from bench.harness import LocalDeployment, RunTimeline  # noqa: E402
from bench.results import BenchResult, Figure, Goal, add_json_option  # noqa: E402
from gtm_orchestration.sandbox.traffic import DemoLeads  # noqa: E402

GOAL_P95_S = 10.0
GOAL_FLOOR_RATIO = 1.5
# What the benchmark must show; stated first and in the results (bench/suite.py reads it).
GOAL = (
    "every form webhook's contact readable in the CRM, p95 at most 10 s and at most "
    "1.5 x the floor's"
)
# The first event also waits for the daemon to load the code location and start ticking.
WARM_UP_TIMEOUT_S = 300.0
# On top of the posting time, for the slowest event to make it.
SETTLE_TIMEOUT_S = 180.0
FLOOR_MODULE = "bench.floor_definitions"
PIPELINE_MODULE = "gtm_orchestration.definitions"


@dataclass
class Latencies:
    """Seconds from POST to arrival of each event that arrived, and how many never did."""

    seconds: list[float]
    missing: int

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile (``q`` in 0..1) of the arrived events; NaN if none."""
        if not self.seconds:
            return math.nan
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def summary(self) -> str:
        text = (
            f"n={len(self.seconds)}  p50 {self.percentile(0.5):6.2f} s  "
            f"p95 {self.percentile(0.95):6.2f} s  max {max(self.seconds, default=math.nan):6.2f} s"
        )
        return text + (f"  ({self.missing} never arrived)" if self.missing else "")


@dataclass
class Measurement:
    """The latencies of one part and the timelines of the runs its sensor launched."""

    latencies: Latencies
    runs: list[RunTimeline]

    def stage_medians(self) -> dict[str, float]:
        """Median seconds runs spent queued, starting their process and running the job
        (NaN for a stage no run reached)."""
        medians = {}
        for name, stage in (("queued", _queued), ("process_start", _launching), ("job", _running)):
            values = [value for run in self.runs if (value := stage(run)) is not None]
            medians[name] = statistics.median(values) if values else math.nan
        return medians

    def run_summary(self) -> str:
        """Median seconds runs spent queued, starting their process and running the job."""
        medians = self.stage_medians()

        def median(name: str) -> str:
            return "    - " if math.isnan(medians[name]) else f"{medians[name]:5.2f} s"

        return (
            f"{len(self.runs)} runs; median queued {median('queued')}, "
            f"process start {median('process_start')}, job {median('job')}"
        )

    def figures(self, prefix: str) -> dict[str, Figure]:
        """The latencies and stage medians, keyed ``<prefix>_p95_s`` and so on."""
        latencies = self.latencies
        return {
            f"{prefix}_events": len(latencies.seconds),
            f"{prefix}_missing": latencies.missing,
            f"{prefix}_p50_s": latencies.percentile(0.5),
            f"{prefix}_p95_s": latencies.percentile(0.95),
            f"{prefix}_max_s": max(latencies.seconds, default=math.nan),
            f"{prefix}_runs": len(self.runs),
        } | {f"{prefix}_median_{name}_s": value for name, value in self.stage_medians().items()}


def _seconds(value: float) -> str:
    """Seconds for the summary; a stage no run reached (yet) says so."""
    return "not reached" if math.isnan(value) else f"{value:.2f} s"


def _queued(run: RunTimeline) -> float | None:
    return run.starting - run.enqueued if run.starting and run.enqueued else None


def _launching(run: RunTimeline) -> float | None:
    return run.started - run.starting if run.started and run.starting else None


def _running(run: RunTimeline) -> float | None:
    return run.ended - run.started if run.ended and run.started else None


def form_payloads(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` realistic form submissions with unique emails and event ids."""
    leads = DemoLeads(seed)
    return [{**leads.form_submission(), "event_id": f"bench-{uuid.uuid4().hex}"} for _ in range(n)]


def post_steadily(
    deployment: LocalDeployment, payloads: list[dict[str, Any]], source: str, rate: float
) -> list[float]:
    """POST ``payloads`` at ``rate`` a second, on time even when an answer is slow; returns
    each POST's start time."""
    started = time.monotonic()
    futures: list[Future[float]] = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        for index, payload in enumerate(payloads):
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            futures.append(pool.submit(deployment.post_form, payload, source))
    return [future.result() for future in futures]


def arrival_latencies(posted: Mapping[str, float], arrived: Mapping[str, float]) -> Latencies:
    return Latencies(
        seconds=[arrived[key] - at for key, at in posted.items() if key in arrived],
        missing=sum(key not in arrived for key in posted),
    )


def measure_floor(reference: ReferenceSensor, n: int, rate: float, seed: int) -> Measurement:
    """POST to the floor's form source, until its asset recorded the event."""
    with LocalDeployment([FLOOR_MODULE], extra_env=reference.to_env()) as deployment:

        def wait_for_records(event_ids: list[str], timeout_s: float) -> dict[str, float]:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                records = read_floor_records(deployment.data_dir)
                if all(event_id in records for event_id in event_ids):
                    break
                deployment.check_daemon()
                time.sleep(0.2)
            return read_floor_records(deployment.data_dir)

        return _measure(
            deployment,
            "floor",
            bench_floor_sensor.name,
            FLOOR_SOURCE,
            n,
            rate,
            seed,
            key=lambda payload: str(payload["event_id"]),
            collect=wait_for_records,
        )


def measure_pipeline(sensor_name: str, n: int, rate: float, seed: int) -> Measurement:
    """POST to the ``leads`` form source, until the contact is readable in the CRM."""
    with LocalDeployment([PIPELINE_MODULE]) as deployment:
        return _measure(
            deployment,
            "pipeline",
            sensor_name,
            "leads",
            n,
            rate,
            seed,
            key=lambda payload: str(payload["email"]).strip().lower(),
            collect=deployment.wait_for_contacts,
        )


def _measure(
    deployment: LocalDeployment,
    label: str,
    sensor_name: str,
    source: str,
    n: int,
    rate: float,
    seed: int,
    *,
    key: Callable[[dict[str, Any]], str],
    collect: Callable[[list[str], float], dict[str, float]],
) -> Measurement:
    warm_up, *payloads = form_payloads(n + 1, seed)
    print(f"{label}: deployment in {deployment.root}; warming up (daemon start, first run)")
    deployment.post_form(warm_up, source)
    if key(warm_up) not in collect([key(warm_up)], WARM_UP_TIMEOUT_S):
        print(f"{label}: the warm-up event never arrived; daemon log:")
        print(deployment.daemon_log_tail())
        return Measurement(Latencies([], missing=n), [])
    keys = [key(payload) for payload in payloads]
    timeout_s = n / rate + SETTLE_TIMEOUT_S
    # Arrivals are watched while posting, so an early arrival is timed when it happens.
    arrivals: dict[str, float] = {}
    watcher = threading.Thread(target=lambda: arrivals.update(collect(keys, timeout_s)))
    watcher.start()
    print(f"{label}: posting {n} forms at {rate:g}/s")
    posted_at = post_steadily(deployment, payloads, source, rate)
    watcher.join()
    return Measurement(
        arrival_latencies(dict(zip(keys, posted_at, strict=True)), arrivals),
        deployment.run_timelines(sensor_name, since=min(posted_at)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30, help="form webhooks per measurement")
    parser.add_argument("--rate", type=float, default=1.0, help="webhooks a second")
    parser.add_argument("--seed", type=int, default=7, help="seed of the made-up leads")
    add_json_option(parser)
    args = parser.parse_args(argv)

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"goal: {GOAL}")
    reference = ReferenceSensor.from_project()
    interval = reference.minimum_interval_seconds
    print(
        f"reference sensor: {reference.name} (every {interval or 'default'} s, "
        f"{reference.default_status.lower()} by default, {reference.executor} executor)"
    )
    floor = measure_floor(reference, args.n, args.rate, args.seed)
    pipeline: Measurement | None = None
    if reference.name == WEBHOOK_SENSOR:
        pipeline = measure_pipeline(reference.name, args.n, args.rate, args.seed)

    print()
    print(f"floor     POST -> trivial asset ran       {floor.latencies.summary()}")
    print(f"          {floor.run_summary()}")
    result = BenchResult(
        "latency",
        GOAL,
        parameters={"n": args.n, "rate": args.rate, "seed": args.seed},
        figures=floor.figures("floor"),
    )
    floor_p95 = floor.latencies.percentile(0.95)
    if pipeline is None:
        print(
            f"pipeline  not measured: the project has no {WEBHOOK_SENSOR} yet, so form webhooks "
            "do not reach the CRM"
        )
        result.goals = [Goal("form webhook to CRM contact measured", "not measured", False)]
        result.summary = f"pipeline not measured (no {WEBHOOK_SENSOR}); floor p95 {floor_p95:.2f} s"
        return result.report(args.json)
    print(f"pipeline  POST -> contact readable in CRM {pipeline.latencies.summary()}")
    print(f"          {pipeline.run_summary()}")
    latencies = pipeline.latencies
    p95 = latencies.percentile(0.95)
    ratio = p95 / floor_p95 if floor_p95 else math.nan
    print(f"ratio     p95 / p95 floor = {ratio:.2f}")
    result.figures |= pipeline.figures("pipeline") | {"ratio_p95": ratio}
    # A comparison with NaN (nothing arrived) is False: such a goal is not met.
    result.goals = [
        Goal(
            "every form webhook's contact readable in the CRM",
            f"{len(latencies.seconds)} of {len(latencies.seconds) + latencies.missing}",
            not latencies.missing,
        ),
        Goal(f"p95 at most {GOAL_P95_S:g} s", f"{p95:.2f} s", p95 <= GOAL_P95_S),
        Goal(
            f"p95 at most {GOAL_FLOOR_RATIO:g} x the floor's",
            f"{ratio:.2f} x",
            ratio <= GOAL_FLOOR_RATIO,
        ),
    ]
    medians = pipeline.stage_medians()
    result.summary = (
        f"form POST -> contact readable in the CRM: p95 {p95:.2f} s (p50 "
        f"{latencies.percentile(0.5):.2f} s, max {max(latencies.seconds, default=math.nan):.2f} s"
        + (f", {latencies.missing} never arrived" if latencies.missing else "")
        + f"); floor p95 {floor_p95:.2f} s; p95 / floor = {ratio:.2f}; median run queued "
        f"{_seconds(medians['queued'])}, process start {_seconds(medians['process_start'])}, "
        f"job {_seconds(medians['job'])}"
    )
    return result.report(args.json)


if __name__ == "__main__":
    sys.exit(main())
