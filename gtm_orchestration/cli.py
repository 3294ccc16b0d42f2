"""The ``gtm`` command line."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from contextlib import ExitStack, closing
from pathlib import Path

import httpx

from gtm_orchestration.settings import RECEIVER_PORT, SANDBOX_HOST, SANDBOX_PORT, Settings

# Both code locations: the pipeline and the warehouse models.
WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"


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

    serve(Settings.from_env().data_dir, host=args.host, port=args.port)
    return 0


def _print_report(report: object) -> None:
    for run in report.runs:  # type: ignore[attr-defined]
        where = f" [{run.partition}]" if run.partition else ""
        print(f"{'ok    ' if run.success else 'FAILED'} {run.job}{where} run {run.run_id}")
        for failure in run.failures:
            print(f"         {failure}")


def _cmd_process(args: argparse.Namespace) -> int:
    import dagster as dg

    from gtm_orchestration.runs import dagster_home, process_landing_zone

    dagster_home()
    with dg.DagsterInstance.get() as instance:
        report = process_landing_zone(instance)
    if not report.runs:
        print("nothing new in the landing zone")
    _print_report(report)
    return 0 if report.success else 1


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
    landing = settings.data_dir / "landing"
    items = scan_dropped_files(landing / "files") + scan_lead_webhook_batches(landing)
    records = diff_landed_records(items, old, new)
    print(describe(old, new, diff_registries(old, new), records))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import dagster as dg

    from gtm_orchestration.demo import drop_sample_files, seed_crm, summarize
    from gtm_orchestration.receiver.config import ReceiverConfig
    from gtm_orchestration.runs import dagster_home, process_landing_zone
    from gtm_orchestration.sandbox.traffic import DemoTraffic

    settings = Settings.from_env()
    home = dagster_home()
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
        with dg.DagsterInstance.get() as instance:
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
    server = stack.enter_context(ReceiverServer(settings.data_dir, port=settings.receiver_port))
    return server.base_url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gtm", description="GTM data pipelines on Dagster.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="sandbox + sample data + one pipeline pass + the UI")
    demo.add_argument("--once", action="store_true", help="run headless once and exit")
    demo.set_defaults(handler=_cmd_demo)

    process = commands.add_parser("process", help="run the pipeline over new landed data, now")
    process.set_defaults(handler=_cmd_process)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
