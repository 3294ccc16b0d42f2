"""Dry runs: what a dropped file would send to the CRM, with nothing loaded."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from gtm_orchestration.lib.batch import scratch_connection
from gtm_orchestration.lib.crm_schema import build_payloads
from gtm_orchestration.lib.lead_files import read_lead_file
from gtm_orchestration.lib.mapping import MappingRegistry
from gtm_orchestration.lib.normalize import normalize_email
from gtm_orchestration.lib.transform import transform_leads
from gtm_orchestration.lib.validation import looks_like_formula


@dataclass(frozen=True)
class DryRunReport:
    rows: int
    ready: int
    merged: int
    rejected: int
    out_path: Path


def _cell(value: str) -> str:
    # Whatever the input held, the report must be safe to open in a spreadsheet.
    return "'" + value if looks_like_formula(value) else value


def dry_run_file(
    registry: MappingRegistry, source_name: str, path: Path, out_path: Path
) -> DryRunReport:
    """Validate and transform ``path`` as a drop for ``source_name``; write the payloads.

    Writes one CSV row per record of the file: ``line``, one column per CRM contact
    property, ``status`` (ready, merged, rejected) and ``reason``. Raises FileRejected when
    the file would be rejected whole, ConfigError for an unknown source.
    """
    source = registry.source(source_name)
    parsed = read_lead_file(path, source)
    landed_at = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    n = parsed.accepted.num_rows
    rows = parsed.accepted
    for name, array in {
        "source": pa.array([source_name] * n, pa.string()),
        "source_file": pa.array([str(path)] * n, pa.string()),
        "landed_at": pa.array([landed_at] * n, pa.timestamp("us", tz="UTC")),
        "mapping_version": pa.array([registry.version] * n, pa.int32()),
    }.items():
        rows = rows.append_column(name, array)

    con = scratch_connection()
    con.register("dry_rows", rows)
    leads, _ = transform_leads(con, "dry_rows")
    con.close()

    mapping = registry.crm["contacts"]
    lead_rows = leads.to_pylist()
    payloads = {p.key: p for p in build_payloads(lead_rows, mapping, "contacts")}
    winner_line = {lead["email"]: lead["line"] for lead in lead_rows}
    out: list[tuple[int, dict[str, str], str, str]] = []
    for line, raw_email in zip(
        parsed.accepted.column("line").to_pylist(),
        parsed.accepted.column("email").to_pylist(),
        strict=True,
    ):
        email = normalize_email(raw_email)
        if winner_line.get(email) == line:
            out.append((line, payloads[email].properties, "ready", ""))
        else:
            reason = f"same email as line {winner_line.get(email)}; merged into that record"
            out.append((line, {"email": email or ""}, "merged", reason))
    for rejection in parsed.rejections:
        where = rejection.describe(str(path)).removeprefix(f"{path}: ")
        out.append((rejection.line or 0, {}, "rejected", where))
    out.sort(key=lambda item: item[0])

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", *mapping, "status", "reason"])
        for line, props, status, reason in out:
            writer.writerow(
                [line, *(_cell(props.get(p, "")) for p in mapping), status, _cell(reason)]
            )
    counts = {s: sum(1 for item in out if item[2] == s) for s in ("ready", "merged", "rejected")}
    return DryRunReport(len(out), counts["ready"], counts["merged"], counts["rejected"], out_path)
