"""A post-webinar spike: thousands of form webhooks at once, through to the CRM.

    .venv/bin/python bench/spike.py [--n 3000] [--concurrency 32] [--json PATH]

Posts ``--n`` signed form submissions to a fresh local deployment from ``--concurrency``
senders as fast as the receiver answers, then prints the receiver's accepted requests per
second, the time from the first POST until the last contact is readable through the CRM
search API, and whether the goal is met: every submission accepted and in the CRM exactly once
(counted by search). Exit status 1 when it is not.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

# Run as a script from anywhere: the bench modules import each other from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.floor_definitions import WEBHOOK_SENSOR, ReferenceSensor  # noqa: E402
from bench.harness import LocalDeployment  # noqa: E402
from bench.latency import WARM_UP_TIMEOUT_S, form_payloads  # noqa: E402
from bench.results import BenchResult, Goal, add_json_option  # noqa: E402

# What a webhook sender does with a 5xx or a refused connection: try again, a few times.
SEND_ATTEMPTS = 5
SETTLE_TIMEOUT_S = 1800.0
# What the benchmark must show; stated first and in the results (bench/suite.py reads it).
GOAL = "every webhook accepted and each submission in the CRM exactly once"


def post_with_retries(deployment: LocalDeployment, payload: dict[str, Any]) -> tuple[float, bool]:
    """POST one form as a sender would, retrying failures; returns when it was answered and
    whether it was accepted in the end."""
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            deployment.post_form(payload)
            return time.time(), True
        except httpx.HTTPError as error:
            if attempt == SEND_ATTEMPTS:
                print(f"gave up on {payload['event_id']}: {error}", file=sys.stderr)
            time.sleep(0.2 * attempt)
    return time.time(), False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="form webhooks to post")
    parser.add_argument("--concurrency", type=int, default=32, help="senders posting at once")
    parser.add_argument("--seed", type=int, default=7, help="seed of the made-up leads")
    add_json_option(parser)
    args = parser.parse_args(argv)

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"goal: {GOAL}")
    result = BenchResult(
        "spike", GOAL, parameters={"n": args.n, "concurrency": args.concurrency, "seed": args.seed}
    )
    pipeline_runs = ReferenceSensor.from_project().name == WEBHOOK_SENSOR
    warm_up, *payloads = form_payloads(args.n + 1, args.seed)
    emails = [str(payload["email"]).strip().lower() for payload in payloads]
    with LocalDeployment() as deployment:
        print(f"deployment in {deployment.root}")
        if pipeline_runs:
            print("warming up (daemon start, first run)")
            deployment.post_form(warm_up)
            if not deployment.wait_for_contacts([warm_up["email"]], WARM_UP_TIMEOUT_S):
                print("the warm-up contact never reached the CRM; daemon log:")
                print(deployment.daemon_log_tail())
                result.goals = [Goal("warm-up contact reaches the CRM", "never arrived", False)]
                result.summary = "the warm-up contact never reached the CRM"
                return result.report(args.json)

        print(f"posting {args.n} forms from {args.concurrency} senders")
        first_post = time.time()
        with ThreadPoolExecutor(max_workers=args.concurrency) as senders:
            answers = list(senders.map(lambda p: post_with_retries(deployment, p), payloads))
        last_answer = max(answered for answered, _ in answers)
        accepted = sum(ok for _, ok in answers)
        elapsed = last_answer - first_post
        print(
            f"receiver  accepted {accepted}/{args.n} in {elapsed:.2f} s: "
            f"{accepted / elapsed:.0f} requests/s"
        )
        result.figures = {
            "accepted": accepted,
            "accept_s": elapsed,
            "accepted_per_s": accepted / elapsed,
        }
        accepted_goal = Goal(
            "every webhook accepted by the receiver", f"{accepted} of {args.n}", accepted == args.n
        )
        receiver_figures = (
            f"{accepted:,} of {args.n:,} webhooks accepted in {elapsed:.1f} s "
            f"({accepted / elapsed:,.0f} requests/s)"
        )
        if not pipeline_runs:
            print(
                f"pipeline  not measured: the project has no {WEBHOOK_SENSOR} yet, so form "
                "webhooks do not reach the CRM"
            )
            result.goals = [accepted_goal, Goal("each in the CRM exactly once", "no", False)]
            result.summary = f"{receiver_figures}; pipeline not measured (no {WEBHOOK_SENSOR})"
            return result.report(args.json)

        seen = deployment.wait_for_contacts(emails, SETTLE_TIMEOUT_S, poll_interval_s=1.0)
        last_seen = max(seen.values()) - first_post if seen else math.nan
        if seen:
            print(
                f"crm       last contact readable {last_seen:.1f} s "
                f"after the first POST ({len(seen)}/{args.n} seen)"
            )
        found = deployment.count_contacts(emails)
        total = deployment.total_contacts()
        # Emails are unique in the CRM, so one more contact than expected means a variant
        # of an address was created twice.
        exactly_once = found == args.n and total == args.n + 1
        print(
            f"crm       {found}/{args.n} found by search, {total} contacts in all "
            f"(with the warm-up's): {'each exactly once' if exactly_once else 'NOT exactly once'}"
        )
    result.figures |= {
        "seen": len(seen),
        "last_contact_s": last_seen,
        "found": found,
        "contacts_in_crm": total,
    }
    result.goals = [
        accepted_goal,
        Goal(
            "each submission in the CRM exactly once",
            f"{found} of {args.n} found, {total - 1} contacts created",
            exactly_once,
        ),
    ]
    result.summary = (
        f"{receiver_figures}; last contact readable {last_seen:.1f} s after the first POST; "
        f"{found:,} of {args.n:,} in the CRM, {total - 1:,} created"
        + (", each exactly once" if exactly_once else "")
    )
    return result.report(args.json)


if __name__ == "__main__":
    sys.exit(main())
