"""Data-quality rules over each stage's outputs: the asset checks' logic.

Schema, completeness, duplicates, enumerations and freshness, over raw rows, leads and
companies. Which checks block the load, and at which severity each reports, is the assets'
business (``defs/``); a rule here only says what fails and gives examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa

from gtm_orchestration.lib.batch import distinct_lookup, join_on
from gtm_orchestration.lib.crm_schema import portal_schema
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS
from gtm_orchestration.lib.normalize import is_valid_email

REQUIRED_LEAD_FIELDS = (
    "email",
    "function",
    "seniority",
    "persona",
    "territory",
    "lifecycle_stage",
    "source",
    "mapping_version",
)

# Fields reps expect on a contact: their completeness is measured (``lib/metrics.py``), not
# required; a lead without a title still reaches the CRM.
EXPECTED_LEAD_FIELDS = ("first_name", "last_name", "company", "title", "country", "domain")

# Fields every CRM company needs: its upsert key.
REQUIRED_COMPANY_FIELDS = ("domain",)

# What every raw lead row carries: each canonical field of the registry and its provenance.
RAW_LEAD_COLUMNS = (
    *CANONICAL_FIELDS,
    "source",
    "source_file",
    "file_sha256",
    "line",
    "mapping_version",
    "partition_date",
    "landed_at",
    "loaded_at",
)
INGESTION_STATUSES = ("ingested", "rejected", "duplicate")

# Lead column -> (CRM object, property) whose enumeration options bound it.
ENUMERATED_LEAD_COLUMNS = {
    "function": ("contacts", "gtm_function"),
    "seniority": ("contacts", "gtm_seniority"),
    "employees_band": ("contacts", "numemployees"),
    "lifecycle_stage": ("contacts", "lifecyclestage"),
    "company_industry": ("companies", "industry"),
}


@dataclass(frozen=True)
class QualityResult:
    passed: bool
    failures: int
    examples: tuple[str, ...]

    @classmethod
    def combine(cls, results: list[QualityResult]) -> QualityResult:
        """One result for several batches: passed only if every batch passed."""
        examples = tuple(e for r in results for e in r.examples)[:5]
        return cls(all(r.passed for r in results), sum(r.failures for r in results), examples)

    @property
    def description(self) -> str:
        if self.passed:
            return "passed"
        return f"{self.failures} failing: " + "; ".join(self.examples)


def _result(rows: list[tuple]) -> QualityResult:
    examples = tuple(str(r[0]) for r in rows[:5])
    return QualityResult(not rows, len(rows), examples)


def missing_required_fields(con: duckdb.DuckDBPyConnection, relation: str) -> QualityResult:
    """Leads lacking a field every CRM contact must carry."""
    conditions = " OR ".join(f"{f} IS NULL" for f in REQUIRED_LEAD_FIELDS)
    checks = ", ".join(f"CASE WHEN {f} IS NULL THEN '{f}' END" for f in REQUIRED_LEAD_FIELDS)
    rows = con.execute(
        f"SELECT coalesce(email, '<no email>') || ' lacks ' || concat_ws(', ', {checks}) "
        f"FROM {relation} WHERE {conditions}"
    ).fetchall()
    return _result(rows)


def duplicate_keys(con: duckdb.DuckDBPyConnection, relation: str, key: str) -> QualityResult:
    """Values of ``key`` held by more than one row (case-insensitively)."""
    rows = con.execute(
        f"SELECT lower({key}) || ' x' || count(*) FROM {relation} "
        f"WHERE {key} IS NOT NULL GROUP BY lower({key}) HAVING count(*) > 1"
    ).fetchall()
    return _result(rows)


def malformed_emails(con: duckdb.DuckDBPyConnection, relation: str) -> QualityResult:
    """Emails the CRM could not key a contact by (extraction's own rule, checked again)."""
    lookup = distinct_lookup(
        con,
        relation,
        ["email"],
        lambda email: (email is not None and is_valid_email(email),),
        pa.schema([("valid", pa.bool_())]),
    )
    rows = con.execute(
        f"SELECT r.email FROM {relation} r JOIN {lookup} AS l ON {join_on('l', ['r.email'])} "
        "WHERE NOT l.valid"
    ).fetchall()
    return _result(rows)


def invalid_enumerations(con: duckdb.DuckDBPyConnection, relation: str) -> QualityResult:
    """Values the CRM would reject as an invalid option."""
    schema = portal_schema()
    rows: list[tuple] = []
    for column, (object_type, prop) in ENUMERATED_LEAD_COLUMNS.items():
        options = list(schema.objects[object_type].properties[prop].options)  # type: ignore[index]
        rows += con.execute(
            f"SELECT DISTINCT '{column}=' || {column} FROM {relation} "
            f"WHERE {column} IS NOT NULL AND NOT list_contains(?, {column})",
            [options],
        ).fetchall()
    return _result(rows)


def malformed_domains(con: duckdb.DuckDBPyConnection, relation: str) -> QualityResult:
    """Company domains that are not bare lower-case host names."""
    rows = con.execute(
        f"SELECT domain FROM {relation} WHERE NOT regexp_matches(domain, "
        r"'^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$') "
        "OR starts_with(domain, 'www.')"
    ).fetchall()
    return _result(rows)


def _days_filter(days: Sequence[date]) -> str:
    # Dates, not text: nothing a caller passes reaches the SQL but ISO dates.
    return ", ".join(f"DATE '{day.isoformat()}'" for day in days)


def raw_lead_rows_of_days(days: Sequence[date]) -> str:
    """The relation of the raw lead rows (every mapping version) of ``days``."""
    return f"(SELECT * FROM raw.lead_rows WHERE partition_date IN ({_days_filter(days)}))"


def engagement_events_of_days(days: Sequence[date]) -> str:
    """The relation of the engagement events landed on ``days``."""
    return f"(SELECT * FROM raw.engagement_events WHERE partition_date IN ({_days_filter(days)}))"


def ingestion_statuses_outside(con: duckdb.DuckDBPyConnection, run_id: str) -> QualityResult:
    """Files logged by run ``run_id`` with a status other than ingested, rejected or
    duplicate."""
    rows = con.execute(
        "SELECT file_path || ': status=' || coalesce(status, '<none>') FROM raw.file_ingestions "
        "WHERE run_id = ? AND (status IS NULL OR NOT list_contains(?, status))",
        [run_id, list(INGESTION_STATUSES)],
    ).fetchall()
    return _result(rows)


def missing_columns(
    con: duckdb.DuckDBPyConnection, relation: str, expected: Sequence[str]
) -> QualityResult:
    """Columns of ``expected`` that ``relation`` lacks (a schema drift of the raw tables)."""
    description = con.execute(f"SELECT * FROM {relation} LIMIT 0").description or []
    present = {column[0] for column in description}
    missing = [f"{relation} has no column {c}" for c in expected if c not in present]
    return QualityResult(not missing, len(missing), tuple(missing[:5]))


def rows_missing(
    con: duckdb.DuckDBPyConnection, relation: str, fields: Sequence[str], label: str
) -> QualityResult:
    """Rows of ``relation`` lacking (null or blank) one of ``fields``; each example is the
    row's ``label`` (a SQL expression, e.g. its file and line) and the fields it lacks."""
    blank = {f: f"nullif(trim(CAST({f} AS VARCHAR)), '') IS NULL" for f in fields}
    lacking = ", ".join(f"CASE WHEN {test} THEN '{f}' END" for f, test in blank.items())
    rows = con.execute(
        f"SELECT {label} || ' lacks ' || concat_ws(', ', {lacking}) FROM {relation} "
        f"WHERE {' OR '.join(blank.values())}"
    ).fetchall()
    return _result(rows)


def duplicate_rows(
    con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[str]
) -> QualityResult:
    """Combinations of ``columns`` held by more than one row of ``relation``."""
    key = ", ".join(columns)
    rows = con.execute(
        f"SELECT concat_ws(':', {key}) || ' x' || count(*) FROM {relation} "
        f"GROUP BY {key} HAVING count(*) > 1"
    ).fetchall()
    return _result(rows)


def values_outside(
    con: duckdb.DuckDBPyConnection, relation: str, column: str, allowed: Sequence[str]
) -> QualityResult:
    """Distinct values of ``column`` not among ``allowed``."""
    rows = con.execute(
        f"SELECT DISTINCT '{column}=' || {column} FROM {relation} "
        f"WHERE {column} IS NULL OR NOT list_contains(?, {column})",
        [list(allowed)],
    ).fetchall()
    return _result(rows)


def share_above(part: int, whole: int, max_share: float, what: str) -> QualityResult:
    """``part`` of ``whole`` records (``what``, e.g. "rows rejected") over ``max_share``."""
    share = part / whole if whole else 0.0
    if share <= max_share:
        return QualityResult(True, 0, ())
    example = f"{part} of {whole} {what} ({share:.1%}), above {max_share:.1%}"
    return QualityResult(False, part, (example,))


def latency_above(p95_s: float | None, samples: int, sla_s: float, what: str) -> QualityResult:
    """The p95 of ``samples`` latencies (landing -> ``what``) over ``sla_s`` seconds; passes
    when nothing was measured."""
    if p95_s is None or p95_s <= sla_s:
        return QualityResult(True, 0, ())
    example = f"p95 landing -> {what} {p95_s:.0f} s over {samples} records, SLA {sla_s:.0f} s"
    return QualityResult(False, samples, (example,))
