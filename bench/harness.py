"""The whole local deployment in a fresh temporary folder, started as a user runs it.

``LocalDeployment`` starts the sandbox CRM and the webhook receiver on free ports and
``dagster-daemon run`` over the given code locations as a subprocess, with ``DAGSTER_HOME``
(holding the ``dagster.yaml`` gtm generates from the repository's), ``GTM_DATA_DIR`` and
``HUBSPOT_BASE_URL`` of its own. When ``DAGSTER_PG_URL`` is set, the instance is stored in
PostgreSQL, in a database of its own on that server, dropped at the end. Its helpers post
signed form webhooks and watch contacts become readable through the CRM API, the way an
outside observer would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import dagster as dg
import httpx

from bench.postgres import scratch_database
from gtm_orchestration.instance import PG_URL_VARIABLE, write_instance_config
from gtm_orchestration.receiver.config import ReceiverConfig
from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.receiver.signatures import gtm_signature
from gtm_orchestration.sandbox.server import SandboxServer

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_MODULE = "gtm_orchestration.definitions"
# Rate limits are per token: the observer's polls never eat into the pipeline's allowance.
OBSERVER_TOKEN = "bench-observer"
SEARCH_BATCH = 100
# Well under the sandbox's 190 requests per 10 s, so polling never meets a 429.
OBSERVER_MAX_REQUESTS_PER_S = 12.0
# Settings that could point the deployment at real services or shared storage.
ISOLATED_VARIABLES = (
    "GTM_WAREHOUSE_URL",
    "DAGSTER_PG_URL",
    "HUBSPOT_ACCESS_TOKEN",
    "SLACK_WEBHOOK_URL",
    "PAGERDUTY_EVENTS_URL",
    "PAGERDUTY_ROUTING_KEY",
    "GTM_SMTP_URL",
    "GTM_DIGEST_TO",
)


class DaemonExited(RuntimeError):
    """The dagster-daemon process ended while the deployment was in use."""


@dataclass(frozen=True)
class RunTimeline:
    """When a run went through each stage (epoch seconds; None for a stage not reached)."""

    run_id: str
    status: str
    created: float
    enqueued: float | None = None
    starting: float | None = None  # taken off the queue, its process being launched
    started: float | None = None  # its process runs the job
    ended: float | None = None


_STAGES = {
    dg.DagsterEventType.RUN_ENQUEUED: "enqueued",
    dg.DagsterEventType.RUN_STARTING: "starting",
    dg.DagsterEventType.RUN_START: "started",
    dg.DagsterEventType.RUN_SUCCESS: "ended",
    dg.DagsterEventType.RUN_FAILURE: "ended",
    dg.DagsterEventType.RUN_CANCELED: "ended",
}


class LocalDeployment:
    """Sandbox, receiver and dagster-daemon in a temporary folder; a context manager.

    ``modules`` are the code locations the daemon loads (``-m`` each); ``extra_env`` is added
    to the daemon's environment. ``keep`` leaves the folder in place for a post-mortem.
    """

    def __init__(
        self,
        modules: Sequence[str] = (PROJECT_MODULE,),
        *,
        extra_env: Mapping[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.modules = tuple(modules)
        self.extra_env = dict(extra_env or {})
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="gtm-bench-"))
        self.data_dir = self.root / "data"
        self.dagster_home = self.root / "dagster_home"
        self.daemon_log = self.root / "daemon.log"
        self.webhook_secret = ReceiverConfig.from_env().webhook_secret
        self.sandbox = SandboxServer(self.data_dir / "sandbox")
        self.receiver = ReceiverServer(self.data_dir)
        self.daemon: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(
            timeout=30.0,
            limits=httpx.Limits(max_connections=128, max_keepalive_connections=128),
        )
        self._observer: httpx.Client | None = None
        self._last_observer_request = 0.0
        # The instance's database when DAGSTER_PG_URL is set (None: SQLite in dagster_home).
        self.pg_url: str | None = None
        self._resources = ExitStack()

    def __enter__(self) -> LocalDeployment:
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    @property
    def receiver_url(self) -> str:
        return self.receiver.base_url

    @property
    def crm_url(self) -> str:
        return self.sandbox.base_url

    def post_form(self, payload: Mapping[str, Any], source: str = "leads") -> float:
        """POST one signed form submission; returns when it started (epoch seconds).

        Raises ``httpx.HTTPStatusError`` unless the receiver answers 2xx.
        """
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GTM-Signature": gtm_signature(self.webhook_secret, body),
        }
        started = time.time()
        response = self._http.post(
            f"{self.receiver_url}/webhooks/forms/{source}", content=body, headers=headers
        )
        response.raise_for_status()
        return started

    def wait_for_contacts(
        self, emails: Iterable[str], timeout_s: float, poll_interval_s: float = 0.25
    ) -> dict[str, float]:
        """When each contact became readable through the CRM search API (epoch seconds).

        Polls ``IN`` searches on ``email``, 100 values a request, for the contacts not seen
        yet, until all are seen or ``timeout_s`` passes; a contact's time is the start of the
        first search that returned it, so it is late by at most one polling round. Returns
        the contacts seen, keyed as given; raises ``DaemonExited`` if the daemon died.
        """
        wanted = {email.strip().lower(): email for email in emails}
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout_s
        while wanted and time.monotonic() < deadline:
            round_started = time.monotonic()
            for chunk in _chunks(sorted(wanted), SEARCH_BATCH):
                asked_at = time.time()
                for email in self._found_emails(chunk):
                    if email in wanted:
                        seen[wanted.pop(email)] = asked_at
            self.check_daemon()
            time.sleep(max(0.0, round_started + poll_interval_s - time.monotonic()))
        return seen

    def count_contacts(self, emails: Iterable[str]) -> int:
        """How many contacts the CRM search finds for ``emails`` (the ``total`` of each search)."""
        total = 0
        for chunk in _chunks(sorted({email.strip().lower() for email in emails}), SEARCH_BATCH):
            total += int(self._search(_email_filter(chunk), limit=1)["total"])
        return total

    def total_contacts(self) -> int:
        """How many contacts the CRM holds in all."""
        return int(self._search([], limit=1)["total"])

    def run_timelines(self, sensor_name: str, since: float = 0.0) -> list[RunTimeline]:
        """The stages of the runs ``sensor_name`` launched after ``since`` (epoch seconds),
        oldest first, read from the deployment's Dagster instance."""
        timelines = []
        with self.open_instance() as instance:
            records = instance.get_run_records(
                dg.RunsFilter(tags={"dagster/sensor_name": sensor_name})
            )
            for record in sorted(records, key=lambda r: r.create_timestamp):
                created = record.create_timestamp.timestamp()
                if created < since:
                    continue
                run_id = record.dagster_run.run_id
                stages: dict[str, float] = {}
                for entry in instance.all_logs(run_id, of_type=set(_STAGES)):
                    if entry.dagster_event_type is not None:
                        stages.setdefault(_STAGES[entry.dagster_event_type], entry.timestamp)
                timelines.append(
                    RunTimeline(run_id, record.dagster_run.status.value, created, **stages)
                )
        return timelines

    def open_instance(self) -> dg.DagsterInstance:
        """The deployment's Dagster instance, as its daemon opens it."""
        # The instance's configuration names the variable; its value is this deployment's
        # database only while the storage connects.
        saved = os.environ.get(PG_URL_VARIABLE)
        if self.pg_url:
            os.environ[PG_URL_VARIABLE] = self.pg_url
        try:
            return dg.DagsterInstance.from_config(str(self.dagster_home))
        finally:
            if saved is None:
                os.environ.pop(PG_URL_VARIABLE, None)
            else:
                os.environ[PG_URL_VARIABLE] = saved

    def check_daemon(self) -> None:
        """Raise ``DaemonExited`` with the end of its log if the daemon is no longer running."""
        if self.daemon is not None and self.daemon.poll() is not None:
            raise DaemonExited(
                f"dagster-daemon exited with {self.daemon.returncode}:\n{self.daemon_log_tail()}"
            )

    def daemon_log_tail(self, chars: int = 3000) -> str:
        """The end of the daemon's log."""
        try:
            return self.daemon_log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _start(self) -> None:
        if server := os.environ.get(PG_URL_VARIABLE):
            # A fresh instance, as the SQLite one is a fresh folder: a database of its own.
            self.pg_url = self._resources.enter_context(scratch_database(server, "gtm_bench"))
        write_instance_config(self.dagster_home)
        self.sandbox.start()
        self.receiver.start()
        self._observer = httpx.Client(
            base_url=self.crm_url,
            headers={"Authorization": f"Bearer {OBSERVER_TOKEN}"},
            timeout=30.0,
        )
        env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
        env |= {
            "DAGSTER_HOME": str(self.dagster_home),
            "GTM_DATA_DIR": str(self.data_dir),
            "HUBSPOT_BASE_URL": self.crm_url,
            # The code locations (and bench modules) import from the checkout.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
            **({PG_URL_VARIABLE: self.pg_url} if self.pg_url else {}),
            **self.extra_env,
        }
        command = [str(Path(sys.executable).parent / "dagster-daemon"), "run"]
        for module in self.modules:
            command += ["-m", module]
        with self.daemon_log.open("wb") as log:
            self.daemon = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGTERM reaches run workers
            )

    def _stop(self) -> None:
        if self.daemon is not None:
            _stop_process_group(self.daemon)
        self.receiver.stop()
        self.sandbox.stop()
        self._resources.close()
        self._http.close()
        if self._observer is not None:
            self._observer.close()
        if self.keep:
            print(f"deployment folder kept: {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def _found_emails(self, emails: Sequence[str]) -> list[str]:
        results = self._search(_email_filter(emails), limit=len(emails))["results"]
        return [str(r["properties"].get("email") or "").lower() for r in results]

    def _search(self, filter_groups: list[dict[str, Any]], limit: int) -> dict[str, Any]:
        """One contacts search as the observer, paced, waiting out a 429 if one comes."""
        assert self._observer is not None, "the deployment is not started"
        body = {"filterGroups": filter_groups, "properties": ["email"], "limit": limit}
        while True:
            pause = self._last_observer_request + 1 / OBSERVER_MAX_REQUESTS_PER_S
            time.sleep(max(0.0, pause - time.monotonic()))
            self._last_observer_request = time.monotonic()
            response = self._observer.post("/crm/v3/objects/contacts/search", json=body)
            if response.status_code != 429:
                response.raise_for_status()
                return dict(response.json())
            time.sleep(float(response.headers.get("Retry-After") or 1))


def _stop_process_group(leader: subprocess.Popen[bytes], grace_s: float = 60.0) -> None:
    """SIGTERM the group ``leader`` heads and wait for all of it; SIGKILL what outlives
    ``grace_s``. The daemon's code server and run workers are in its group: one left behind
    would keep writing into the folder about to be removed."""
    group = leader.pid
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        leader.poll()  # reaps the leader, so it no longer counts as a member
        if not _signal_group(group, 0):
            return
        time.sleep(0.2)
    _signal_group(group, signal.SIGKILL)
    leader.wait()


def _signal_group(group: int, signum: int) -> bool:
    """Send ``signum`` to process group ``group``; False when the group has no process left."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _email_filter(emails: Sequence[str]) -> list[dict[str, Any]]:
    return [{"filters": [{"propertyName": "email", "operator": "IN", "values": list(emails)}]}]


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
