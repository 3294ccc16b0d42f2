"""Row validation shared by file drops, form webhooks and dry runs."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from gtm_orchestration.lib.batch import distinct_lookup, join_on, scratch_connection
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS
from gtm_orchestration.lib.normalize import is_valid_email, normalize_email

# A value a spreadsheet would run as a formula when a rep opens an export (CSV injection).
# Leading + or - is allowed where the value is a plain number or phone number. The same
# two patterns serve the batch check (DuckDB) and single values (Python).
_FORMULA_START = r"^[=@\t\r]"
_SIGNED_START = r"^[+-]"
_SIGNED_NUMBER = r"^[+-][0-9 ().,/-]*$"
_FORMULA_SQL = (
    f"(regexp_matches({{col}}, '{_FORMULA_START}') OR (regexp_matches({{col}}, '{_SIGNED_START}')"
    f" AND NOT regexp_matches({{col}}, '{_SIGNED_NUMBER}')))"
)


def looks_like_formula(value: str) -> bool:
    """True when a spreadsheet would evaluate ``value`` as a formula."""
    return bool(
        re.match(_FORMULA_START, value)
        or (re.match(_SIGNED_START, value) and not re.match(_SIGNED_NUMBER, value))
    )


@dataclass(frozen=True)
class Rejection:
    """Why one row was not accepted; ``line`` is the row's first line in its file."""

    line: int | None
    field: str | None
    value: str | None
    reason: str

    def describe(self, where: str) -> str:
        parts = [where]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        if self.value is not None:
            parts.append(f"value {self.value!r}")
        return ": ".join(parts + [self.reason])


def _email_check(raw: str | None) -> tuple[str | None, str | None]:
    email = normalize_email(raw)
    if email is None:
        return None, "missing email: every lead needs an email address"
    if not is_valid_email(email):
        return email, "malformed email address"
    return email, None


def validate_lead_rows(rows: pa.Table) -> tuple[pa.Table, list[Rejection]]:
    """Split canonical rows into accepted rows and rejections.

    A row is rejected when its email is missing or malformed, or when any field holds a
    spreadsheet formula. Accepted rows are returned unchanged (same columns).
    """
    con = scratch_connection()
    con.register("candidate_rows", rows)
    email_lookup = distinct_lookup(
        con,
        "candidate_rows",
        ["email"],
        _email_check,
        pa.schema([("normalized_email", pa.string()), ("email_error", pa.string())]),
    )
    formula_field = " ".join(
        f"WHEN {_FORMULA_SQL.format(col=f)} THEN '{f}'" for f in CANONICAL_FIELDS
    )
    con.execute(
        f"""
        CREATE TEMP TABLE checked_rows AS
        SELECT r.*, l.email_error, CASE {formula_field} ELSE NULL END AS formula_field
        FROM candidate_rows r
        LEFT JOIN {email_lookup} AS l ON {join_on("l", ["r.email"])}
        """
    )
    columns = ", ".join(rows.column_names)
    accepted = con.sql(
        f"SELECT {columns} FROM checked_rows "
        "WHERE email_error IS NULL AND formula_field IS NULL ORDER BY line"
    ).to_arrow_table()
    rejected = con.sql(
        "SELECT * FROM checked_rows WHERE email_error IS NOT NULL OR formula_field IS NOT NULL"
    ).to_arrow_table()
    con.close()

    rejections = []
    for row in rejected.to_pylist():
        if row["formula_field"] is not None:
            field = row["formula_field"]
            reason = "value looks like a spreadsheet formula (CSV injection)"
            rejections.append(Rejection(row["line"], field, row[field], reason))
        else:
            rejections.append(Rejection(row["line"], "email", row["email"], row["email_error"]))
    return accepted, rejections
