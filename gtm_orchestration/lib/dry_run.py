"""Dry runs: what a dropped file would send to the CRM, with nothing loaded."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from gtm_orchestration.lib.batch import scratch_connection
from gtm_orchestration.lib.crm_schema import build_payloads
from gtm_orchestration.lib.lead_files import modified_at, read_lead_file, with_provenance
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
    parsed = read_lead_file(path, registry.source(source_name))
    rows = with_provenance(
        parsed, source_name, path, modified_at(path.stat().st_mtime_ns), registry.version
    )

    con = scratch_connection()
    leads, _ = transform_leads(con, rows)
    con.close()

    mapping = registry.crm["contacts"]
    lead_rows = leads.to_pylist()
    payloads = {p.key: p for p in build_payloads(leads, mapping, "contacts")}
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
