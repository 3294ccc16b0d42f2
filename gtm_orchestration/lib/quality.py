"""Data-quality rules over transformed leads and companies (the blocking checks' logic)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from gtm_orchestration.lib.batch import distinct_lookup, join_on
from gtm_orchestration.lib.crm_schema import portal_schema
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
