"""What the alerting tests share: a small SMTP server, the sandbox's alert sinks as a test
sees them, alert thresholds of a test's own, and rows written into the warehouse."""

from __future__ import annotations

import email
import json
import socketserver
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import yaml

from gtm_orchestration.defs.monitoring import AlertingResource
from gtm_orchestration.defs.monitoring.sensors import alert_monitor
from gtm_orchestration.defs.resources import WarehouseResource
from gtm_orchestration.lib.config import config_path
from gtm_orchestration.lib.warehouse import Warehouse

# People in the test data: none of these may appear in any alert or digest.
PEOPLE = (
    "dana.whitfield@globex.com",
    "m.okafor@initech.com",
    "priya@umbrella.io",
    "raj.patel@gmail.com",
    "sam@globex.com",
)


# --- SMTP ------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode().replace("\r\n", "\n")


def _address(command: str) -> str:
    """The address of ``MAIL FROM:<a@b> SIZE=1`` or ``RCPT TO:<a@b>``."""
    return command.split("<", 1)[1].split(">", 1)[0]


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 for smtplib: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    server: SmtpServer

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._reply("220 test-smtp ready")
        sender, recipients = "", []
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250-test-smtp\r\n250 SIZE 10485760" if verb == "EHLO" else "250 ok")
            elif verb == "MAIL":
                sender, recipients = _address(command), []
                self._reply("250 ok")
            elif verb == "RCPT":
                recipients.append(_address(command))
                self._reply("250 ok")
            elif verb == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                data = []
                while (part := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(part[1:] if part.startswith(b"..") else part)
                message = email.message_from_bytes(b"".join(data))
                self.server.received.append(ReceivedMail(sender, recipients, message))
                self._reply("250 queued")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:  # RSET, NOOP and anything else
                self._reply("250 ok")


class SmtpServer(socketserver.ThreadingTCPServer):
    """An SMTP server on a free loopback port that keeps every message it accepts."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.received: list[ReceivedMail] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"smtp://{host}:{port}?from=gtm-alerts@example.org"

    def __enter__(self) -> SmtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


# --- the sandbox's sinks ------------------------------------------------------------------


@dataclass
class Sinks:
    """The sandbox's alert sinks, through ``GET /__sandbox/alerts``."""

    http: httpx.Client

    def _alerts(self) -> dict[str, Any]:
        return self.http.get("/__sandbox/alerts").raise_for_status().json()

    def slack(self) -> list[dict[str, Any]]:
        """Messages the Slack webhook accepted, oldest first."""
        return [
            a["body"]
            for a in self._alerts()["alerts"]
            if a["sink"] == "slack" and a["status"] == 200
        ]

    def pagerduty(self) -> list[dict[str, Any]]:
        """Events PagerDuty accepted, oldest first."""
        return [
            a["body"]
            for a in self._alerts()["alerts"]
            if a["sink"] == "pagerduty" and a["status"] == 202
        ]

    def incidents(self) -> dict[str, dict[str, Any]]:
        """PagerDuty's incidents by dedup key."""
        return {i["dedup_key"]: i for i in self._alerts()["incidents"]}

    def everything(self) -> str:
        """All the sinks received, as one text."""
        return json.dumps(self._alerts())


def assert_no_personal_data(text: str, people: Sequence[str] = PEOPLE) -> None:
    lowered = text.lower()
    for person in people:
        assert person.lower() not in lowered, person
        assert person.split("@")[0].lower() not in lowered, person


# --- thresholds ---------------------------------------------------------------------------


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def write_thresholds(path: Path, changes: Mapping[str, Any] | None = None) -> Path:
    """The bundled config/alerts.yaml with traffic expected at every hour of every day (so
    tests do not depend on the clock), changed by ``changes`` (nested keys)."""
    config = yaml.safe_load(config_path("alerts.yaml").read_text())
    always = {
        "critical": {
            "zero_throughput": {
                "expected": {
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "start": "00:00",
                    "end": "24:00",
                    "min_baseline_records": 3,
                }
            }
        }
    }
    _merge(config, always)
    _merge(config, changes or {})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def evaluate_monitor(instance: dg.DagsterInstance, thresholds: Path) -> str:
    """Evaluate the ``alert_monitor`` sensor once; returns its skip message."""
    with dg.build_sensor_context(
        instance=instance,
        resources={
            "alerting": AlertingResource(thresholds_path=str(thresholds)),
            "warehouse": WarehouseResource(),
        },
    ) as context:
        result = alert_monitor(context)
    assert isinstance(result, dg.SkipReason)
    return result.skip_message or ""


# --- warehouse rows -----------------------------------------------------------------------


@dataclass
class PipelineRows:
    """Writes what the pipeline would have written into the warehouse's tables."""

    warehouse: Warehouse
    _line: int = field(default=0)

    def lead_rows(self, emails: Sequence[str], landed_at: datetime, loaded_at: datetime) -> None:
        with self.warehouse.connect() as con:
            for address in emails:
                self._line += 1
                con.execute(
                    """INSERT INTO raw.lead_rows (source, source_file, file_sha256, line, email,
                       mapping_version, partition_date, landed_at, loaded_at)
                       VALUES ('leads', 'leads/test.csv', 'sha', ?, ?, 1, ?, ?, ?)""",
                    [self._line, address, landed_at.date(), landed_at, loaded_at],
                )

    def crm_syncs(
        self,
        keys: Sequence[str],
        action: str,
        synced_at: datetime,
        run_id: str = "run-of-the-load",
        destination: str = "hubspot",
        error: str | None = None,
    ) -> None:
        with self.warehouse.connect() as con:
            con.executemany(
                """INSERT INTO gtm.crm_sync_log (run_id, destination, object_type, record_key,
                   action, payload, error, synced_at)
                   VALUES (?, ?, 'contacts', ?, ?, '{}', ?, ?)""",
                [[run_id, destination, key, action, error, synced_at] for key in keys],
            )

    def file_ingestion(
        self, rows_total: int, rows_rejected: int, finished_at: datetime, run_id: str
    ) -> None:
        with self.warehouse.connect() as con:
            con.execute(
                """INSERT INTO raw.file_ingestions (source, file_path, file_name, sha256,
                   size_bytes, status, rows_total, rows_accepted, rows_rejected,
                   mapping_version, partition_date, file_modified_at, started_at, finished_at,
                   run_id)
                   VALUES ('leads', ?, 'test.csv', ?, 100, 'ingested', ?, ?, ?, 1, ?, ?, ?, ?,
                           ?)""",
                [
                    f"leads/{run_id}.csv",
                    run_id,
                    rows_total,
                    rows_total - rows_rejected,
                    rows_rejected,
                    finished_at.date(),
                    finished_at,
                    finished_at,
                    finished_at,
                    run_id,
                ],
            )

    def rejected_rows(self, field_name: str, values: Sequence[str], loaded_at: datetime) -> None:
        with self.warehouse.connect() as con:
            con.executemany(
                """INSERT INTO raw.rejected_rows (source, source_file, file_sha256, line, field,
                   value, reason, partition_date, loaded_at)
                   VALUES ('leads', 'leads/test.csv', 'sha', 1, ?, ?, ?, ?, ?)""",
                [
                    [field_name, value, f"{value!r} is not valid", loaded_at.date(), loaded_at]
                    for value in values
                ],
            )
