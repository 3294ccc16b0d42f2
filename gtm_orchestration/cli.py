"""The ``gtm`` command line."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from gtm_orchestration.settings import RECEIVER_PORT, SANDBOX_HOST, SANDBOX_PORT, Settings

if TYPE_CHECKING:
    import dagster as dg

# Both code locations: the pipeline and the warehouse models.
WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"
# Held while a pipeline pass (gtm process, the demo's pass) runs on an instance.
PASS_LOCK_FILE = ".gtm-pass.lock"


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from gtm_orchestration.sandbox.server import serve

    settings = Settings.from_env()
    serve(host=args.host, port=args.port, state_dir=settings.sandbox_dir)
    return 0


def _cmd_receiver(args: argparse.Namespace) -> int:
    from gtm_orchestration.receiver.server import serve

    settings = Settings.from_env()
    serve(settings.data_dir, host=args.host, port=args.port, storage_root=settings.storage_root)
    return 0


def _print_report(report: object) -> None:
    for run in report.runs:  # type: ignore[attr-defined]
        where = f" [{run.partition}]" if run.partition else ""
        print(f"{'ok    ' if run.success else 'FAILED'} {run.job}{where} run {run.run_id}")
        for failure in run.failures:
            print(f"         {failure}")


def _cmd_process(args: argparse.Namespace) -> int:
    import dagster as dg

    from gtm_orchestration.runs import process_landing_zone

    home = _dagster_home()
    if home is None:
        return 2
    with dg.DagsterInstance.get() as instance, _one_pass_at_a_time(home, instance):
        report = process_landing_zone(instance)
    if not report.runs:
        print("nothing new in the landing zone")
    _print_report(report)
    return 0 if report.success else 1


def _cmd_instance(args: argparse.Namespace) -> int:
    import yaml

    from gtm_orchestration.instance import storage_kind

    home = _dagster_home()
    if home is None:
        return 2
    config = home / "dagster.yaml"
    kind = storage_kind(yaml.safe_load(config.read_text()))
    where = "PostgreSQL" if kind == "postgres" else f"{kind} storage under {home}"
    print(f"{config}: runs, event logs, schedules and sensor state in {where}")
    return 0


def _dagster_home() -> Path | None:
    """$DAGSTER_HOME with its dagster.yaml up to date, or None (the reason printed) when
    that file contradicts the environment."""
    from gtm_orchestration.instance import InstanceConfigError, dagster_home

    try:
        return dagster_home()
    except InstanceConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


@contextmanager
def _one_pass_at_a_time(home: Path, instance: dg.DagsterInstance) -> Iterator[None]:
    """Hold the instance's pass lock: one pipeline pass at a time on an instance.

    Holding it, any run an earlier pass under the same lock left unfinished belongs to a
    process that died (killed, crashed). Such runs are marked failed and their pool slots
    freed; otherwise the slots their steps held stay taken and the next pass waits for them
    forever. Runs of passes on other hosts or instance folders sharing the instance's
    PostgreSQL storage are not this lock's, and are left alone.
    """
    import dagster as dg

    from gtm_orchestration.runs import pass_tags

    with open(home / PASS_LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        unfinished = instance.get_runs(
            dg.RunsFilter(
                statuses=[
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                ],
                tags=pass_tags(),
            )
        )
        for run in unfinished:
            message = "its process ended without finishing it (killed or crashed)"
            instance.report_run_failed(run, message=f"Run marked failed: {message}")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            print(f"closed run {run.run_id} of {run.job_name}: {message}", file=sys.stderr)
        yield


def _cmd_dlq_list(args: argparse.Namespace) -> int:
    from gtm_orchestration.lib.dlq import dead_letters
    from gtm_orchestration.lib.warehouse import Warehouse

    with Warehouse(Settings.from_env().warehouse_url).connect() as con:
        letters = dead_letters(con, pending_only=not args.all)
    if args.json:
        print(json.dumps([letter.as_json() for letter in letters], indent=2))
        return 0
    if not letters:
        print("the dead-letter queue is empty" if not args.all else "no dead letters")
        return 0
    print(f"{'id':>6}  {'status':9}  {'category':9}  {'tries':>5}  {'last failed':20}  record")
    for letter in letters:
        when = letter.last_failed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{letter.id:>6}  {letter.status:9}  {letter.category:9}  {letter.attempts:>5}  "
            f"{when:20}  {letter.destination} {letter.stream} {letter.record_key}"
        )
        print(f"{'':8}{letter.error_code or ''}: {letter.error}")
    return 0


def _cmd_dlq_replay(args: argparse.Namespace) -> int:
    from gtm_orchestration.lib.connectors.hubspot import HubSpotClient
    from gtm_orchestration.lib.connectors.salesforce import SalesforceClient
    from gtm_orchestration.lib.crm_sync import DESTINATION, replay_dead_letters
    from gtm_orchestration.lib.dlq import dead_letters
    from gtm_orchestration.lib.salesforce_sync import DESTINATION as SALESFORCE
    from gtm_orchestration.lib.salesforce_sync import replay_dead_letters as replay_salesforce
    from gtm_orchestration.lib.warehouse import Warehouse

    settings = Settings.from_env()
    warehouse = Warehouse(settings.warehouse_url)
    wanted = sorted(set(args.id or []))
    with warehouse.connect() as con:
        pending = dead_letters(con, ids=wanted)
    if wanted:
        unknown = sorted(set(wanted) - {letter.id for letter in pending})
        if unknown:
            print(f"not pending dead letters: {', '.join(map(str, unknown))}", file=sys.stderr)
            return 2
    by_destination: dict[str, list[int]] = {}
    for letter in pending:
        by_destination.setdefault(letter.destination, []).append(letter.id)
    others = sorted(set(by_destination) - {DESTINATION, SALESFORCE})
    if others:
        print(f"no replay for destination {', '.join(others)}; left queued", file=sys.stderr)
    if not by_destination.get(DESTINATION) and not by_destination.get(SALESFORCE):
        print("nothing to replay")
        return 1 if others else 0
    replay_id = f"dlq-replay-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    still_failing = 0
    if by_destination.get(DESTINATION):
        ids = by_destination[DESTINATION]
        with HubSpotClient(settings.hubspot_base_url, settings.hubspot_access_token) as client:
            summaries = replay_dead_letters(client, warehouse.connect, ids, run_id=replay_id)
        for stream, summary in summaries.items():
            print(
                f"{stream}: {summary.dead_letters_retried} replayed, "
                f"{summary.dead_letters_resolved} delivered, {summary.dead_lettered} still failing"
            )
            for error in summary.errors[:20]:
                print(f"  {error}")
            still_failing += summary.dead_lettered
    if by_destination.get(SALESFORCE):
        ids = by_destination[SALESFORCE]
        url, token = settings.salesforce_instance_url, settings.salesforce_access_token
        with SalesforceClient(url, token) as client:
            replayed = replay_salesforce(client, warehouse.connect, ids, run_id=replay_id)
        for stream, result in replayed.items():
            failing = len(result.failures)
            print(f"salesforce {stream}: {result.payloads} replayed, {failing} still failing")
            for error in result.errors[:20]:
                print(f"  {error}")
            still_failing += failing
    return 1 if still_failing or others else 0


def _cmd_dry_run(args: argparse.Namespace) -> int:
    from gtm_orchestration.lib.config import ConfigError
    from gtm_orchestration.lib.dry_run import dry_run_file
    from gtm_orchestration.lib.lead_files import FileRejected
    from gtm_orchestration.lib.mapping import load_registry

    path = Path(args.file)
    out = Path(args.out) if args.out else Path(f"{path.stem}.crm-payload.csv")
    try:
        report = dry_run_file(load_registry(), args.source, path, out)
    except (FileRejected, ConfigError, FileNotFoundError) as exc:
        print(f"rejected: {exc}", file=sys.stderr)
        return 2
    print(
        f"{report.rows} records: {report.ready} ready, {report.merged} merged into another "
        f"record, {report.rejected} rejected; nothing was loaded. Payload: {report.out_path}"
    )
    return 0


def _registry_version(text: str) -> int:
    """A registry version as typed: ``2`` or ``v2``."""
    try:
        return int(text.lower().removeprefix("v"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a registry version (2 or v2)") from None


def _cmd_mapping_diff(args: argparse.Namespace) -> int:
    from gtm_orchestration.lib.config import ConfigError
    from gtm_orchestration.lib.landing import scan_dropped_files, scan_lead_webhook_batches
    from gtm_orchestration.lib.mapping import load_registry
    from gtm_orchestration.lib.mapping_diff import describe, diff_landed_records, diff_registries

    try:
        old, new = load_registry(args.old), load_registry(args.new)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    landing = settings.landing_dir
    items = scan_dropped_files(landing / "files") + scan_lead_webhook_batches(landing)
    records = diff_landed_records(items, old, new)
    print(describe(old, new, diff_registries(old, new), records))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import dagster as dg

    from gtm_orchestration.demo import drop_sample_files, seed_crm, summarize
    from gtm_orchestration.receiver.config import ReceiverConfig
    from gtm_orchestration.runs import process_landing_zone
    from gtm_orchestration.sandbox.traffic import DemoTraffic

    settings = Settings.from_env()
    home = _dagster_home()
    if home is None:
        return 2
    with ExitStack() as stack:
        if not _answers(settings.hubspot_base_url):
            from gtm_orchestration.sandbox.server import SandboxServer

            default_url = f"http://{SANDBOX_HOST}:{SANDBOX_PORT}"
            if settings.hubspot_base_url != default_url:
                print(f"the CRM at {settings.hubspot_base_url} does not answer", file=sys.stderr)
                return 1
            stack.enter_context(SandboxServer(settings.sandbox_dir, port=SANDBOX_PORT))
            print(f"sandbox CRM on {default_url} (state in {settings.sandbox_dir})")
        receiver_url = _start_receiver(stack, settings)
        seeded = seed_crm(settings.hubspot_base_url, settings.hubspot_access_token)
        dropped = drop_sample_files(settings)
        secret = ReceiverConfig.from_env().webhook_secret
        # The sample burst has fixed event ids: replaying the demo lands nothing new.
        with closing(DemoTraffic(receiver_url, secret, event_id_prefix="sample")) as burst:
            posted = burst.post_burst(DEMO_FORMS, DEMO_SIGNALS)
        print(
            f"seeded {seeded} CRM records; dropped {len(dropped)} sample files; "
            f"posted {len(posted)} form fills and {DEMO_SIGNALS} engagement signals"
        )
        with dg.DagsterInstance.get() as instance, _one_pass_at_a_time(home, instance):
            # The demo materializes every asset, CRM change capture included.
            report = process_landing_zone(instance, settings, poll_crm=True)
        _print_report(report)
        summary = summarize(settings, report.run_ids)
        print("\nsummary")
        for line in summary.lines():
            print(f"  {line}")
        if args.once:
            return 0 if report.success else 1
        # From here on the sandbox keeps posting form fills and signals: runs appear in the UI.
        stack.enter_context(DemoTraffic(receiver_url, secret))
        print(f"\nwebhook receiver on {receiver_url}, posting demo traffic to it")
        print("Dagster UI on http://127.0.0.1:3000 (Ctrl-C to stop)")
        env = dict(os.environ, DAGSTER_HOME=str(home))
        ui = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-h",
                "127.0.0.1",
                "-p",
                "3000",
                "-w",
                str(WORKSPACE),
            ],
            env=env,
        )
        # Stopping the demo stops the UI and daemon with it, by Ctrl-C or by kill.
        signal.signal(signal.SIGTERM, lambda *_: ui.send_signal(signal.SIGTERM))
        try:
            return ui.wait()
        except KeyboardInterrupt:
            ui.send_signal(signal.SIGINT)
            return ui.wait()


# What the demo posts to the receiver before its pipeline pass.
DEMO_FORMS = 12
DEMO_SIGNALS = 20


def _start_receiver(stack: ExitStack, settings: Settings) -> str:
    """The receiver's URL: one already running, or one started here for the demo."""
    from gtm_orchestration.receiver.server import ReceiverServer

    url = f"http://{SANDBOX_HOST}:{settings.receiver_port}"
    if settings.receiver_port and _answers(url):
        return url
    server = stack.enter_context(
        ReceiverServer(
            settings.data_dir, port=settings.receiver_port, storage_root=settings.storage_root
        )
    )
    return server.base_url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gtm", description="GTM data pipelines on Dagster.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="sandbox + sample data + one pipeline pass + the UI")
    demo.add_argument("--once", action="store_true", help="run headless once and exit")
    demo.set_defaults(handler=_cmd_demo)

    process = commands.add_parser("process", help="run the pipeline over new landed data, now")
    process.set_defaults(handler=_cmd_process)

    instance = commands.add_parser(
        "instance",
        help="write $DAGSTER_HOME/dagster.yaml for this environment and say where runs are stored",
    )
    instance.set_defaults(handler=_cmd_instance)

    sandbox = commands.add_parser("sandbox", help="serve the SaaS emulators in the foreground")
    sandbox.add_argument("--host", default=SANDBOX_HOST)
    sandbox.add_argument("--port", type=int, default=SANDBOX_PORT)
    sandbox.set_defaults(handler=_cmd_sandbox)

    receiver = commands.add_parser("receiver", help="serve the webhook receiver in the foreground")
    receiver.add_argument("--host", default=SANDBOX_HOST)
    receiver.add_argument("--port", type=int, default=RECEIVER_PORT)
    receiver.set_defaults(handler=_cmd_receiver)

    dry = commands.add_parser("dry-run", help="what a file would send to the CRM, loading nothing")
    dry.add_argument("source", help="file source name in the mapping registry, e.g. leads")
    dry.add_argument("file", help="the CSV file")
    dry.add_argument("--out", help="where to write the payload CSV")
    dry.set_defaults(handler=_cmd_dry_run)

    mapping = commands.add_parser("mapping", help="the field-mapping registry")
    mapping_commands = mapping.add_subparsers(dest="mapping_command", required=True)
    diff = mapping_commands.add_parser(
        "diff", help="what changing the registry from OLD to NEW would do to the landed records"
    )
    diff.add_argument("old", type=_registry_version, help="registry version, e.g. 1 or v1")
    diff.add_argument("new", type=_registry_version, help="registry version, e.g. 2 or v2")
    diff.set_defaults(handler=_cmd_mapping_diff)

    dlq = commands.add_parser("dlq", help="records that could not be loaded (dead letters)")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="show the dead-letter queue")
    dlq_list.add_argument("--json", action="store_true", help="as JSON")
    dlq_list.add_argument("--all", action="store_true", help="delivered ones too")
    dlq_list.set_defaults(handler=_cmd_dlq_list)
    replay = dlq_commands.add_parser(
        "replay",
        help="send dead letters again, rebuilt from the warehouse's current data and mapping",
    )
    replay.add_argument(
        "--id", type=int, action="append", help="a dead letter's id (repeatable; default: all)"
    )
    replay.set_defaults(handler=_cmd_dlq_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
