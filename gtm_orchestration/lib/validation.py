"""Row validation shared by file drops, form webhooks and dry runs."""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
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
# The characters either pattern can start with: a cheap test that leaves the patterns to
# the few values starting with one of them.
_FORMULA_FIRST = ", ".join(str(ord(c)) for c in "=@\t\r+-")


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


# An address of this shape passes every check of is_valid_email but the last, whether its
# domain is under a public suffix, and normalize_email only lower-cases it: plain letters,
# digits, _ + - in dot-separated runs, one @, labels of letters, digits and inner hyphens,
# a top-level domain of letters. Nearly every address is plain, so a batch of a million
# leads asks the rules about its few thousand domains and the odd addresses only.
_PLAIN_EMAIL = (
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{1,63}"
)
MISSING_EMAIL = "missing email: every lead needs an email address"
MALFORMED_EMAIL = "malformed email address"


def plain_email_sql(column: str) -> str:
    """SQL: whether the address in ``column`` is plain, so that its normalized form is
    ``lower(column)`` and it is valid exactly when its domain is (``domain_takes_mail``)."""
    return (
        f"coalesce(regexp_full_match({column}, '{_PLAIN_EMAIL}') AND length({column}) <= 254 "
        f"AND strpos({column}, '@') <= 65, false)"
    )


def domain_takes_mail(domain: str) -> bool:
    """Whether is_valid_email accepts the domain of a plain address (see plain_email_sql)."""
    return is_valid_email(f"a@{domain}")


def email_check(raw: str | None) -> tuple[str | None, str | None]:
    """The normalized address and why it is rejected (None when it is not)."""
    email = normalize_email(raw)
    if email is None:
        return None, MISSING_EMAIL
    if not is_valid_email(email):
        return email, MALFORMED_EMAIL
    return email, None


def validate_lead_rows(rows: pa.Table) -> tuple[pa.Table, list[Rejection]]:
    """Split canonical rows into accepted rows and rejections.

    A row is rejected when its email is missing or malformed, or when any field holds a
    spreadsheet formula. Accepted rows are returned unchanged (same columns), by ``line``,
    which tells the rows apart.
    """
    con = scratch_connection()
    con.register("candidate_rows", rows)
    try:
        return validate_relation(con, "candidate_rows", rows.column_names)
    finally:
        con.close()


def validate_relation(
    con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]
) -> tuple[pa.Table, list[Rejection]]:
    """``validate_lead_rows`` of the rows of ``relation`` (``columns`` of it are returned)."""
    rejections = find_rejections(con, relation)
    lines = pa.array([r.line for r in rejections], pa.int64())
    con.register("rejected_lines", pa.table({"line": lines}))
    accepted = con.sql(
        f"SELECT {', '.join(columns)} FROM {relation} ANTI JOIN rejected_lines USING (line) "
        "ORDER BY line"
    ).to_arrow_table()
    con.unregister("rejected_lines")
    return accepted, rejections


def find_rejections(con: duckdb.DuckDBPyConnection, relation: str) -> list[Rejection]:
    """Why each row of ``relation`` (``line`` and CANONICAL_FIELDS) that is not to be
    accepted is rejected, one Rejection per such row, with the row's ``line``."""
    plain = plain_email_sql("email")
    # One pass for both: the other addresses, and the domains of the plain ones.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE checked_addresses AS SELECT DISTINCT "
        f"CASE WHEN {plain} THEN lower(split_part(email, '@', 2)) END AS domain, "
        f"CASE WHEN NOT {plain} THEN email END AS email, NOT {plain} AS other "
        f"FROM {relation}"
    )
    email_lookup = distinct_lookup(
        con,
        "(SELECT email FROM checked_addresses WHERE other)",
        ["email"],
        lambda raw: email_check(raw)[1:],
        pa.schema([("email_error", pa.string())]),
    )
    domain_lookup = distinct_lookup(
        con,
        "(SELECT domain FROM checked_addresses WHERE NOT other)",
        ["domain"],
        lambda domain: (domain_takes_mail(domain),),
        pa.schema([("valid", pa.bool_())]),
    )
    con.execute("DROP TABLE checked_addresses")
    formula_field = " ".join(
        f"WHEN ascii({f}) IN ({_FORMULA_FIRST}) AND {_FORMULA_SQL.format(col=f)} THEN '{f}'"
        for f in CANONICAL_FIELDS
    )
    rejected = con.sql(
        f"""
        SELECT * FROM (
            SELECT r.* EXCLUDE (plain_email, other_email, plain_domain),
                   CASE WHEN NOT r.plain_email THEN l.email_error
                        WHEN NOT d.valid THEN '{MALFORMED_EMAIL}' END AS email_error,
                   CASE {formula_field} ELSE NULL END AS formula_field
            FROM (
                SELECT *, {plain} AS plain_email,
                       CASE WHEN NOT {plain} THEN email END AS other_email,
                       CASE WHEN {plain} THEN lower(split_part(email, '@', 2)) END
                           AS plain_domain
                FROM {relation}
            ) r
            -- Join keys only, no other condition in ON: each join stays a hash join. A
            -- plain row's other_email is NULL and may meet the lookup's NULL key (a missing
            -- address); its email_error comes from the domain all the same.
            LEFT JOIN {email_lookup} AS l ON {join_on("l", ["r.other_email"])}
            LEFT JOIN {domain_lookup} AS d ON d.k0 = r.plain_domain
        ) WHERE email_error IS NOT NULL OR formula_field IS NOT NULL
        """
    ).to_arrow_table()

    rejections = []
    for row in rejected.to_pylist():
        if row["formula_field"] is not None:
            field = row["formula_field"]
            reason = "value looks like a spreadsheet formula (CSV injection)"
            rejections.append(Rejection(row["line"], field, row[field], reason))
        else:
            rejections.append(Rejection(row["line"], "email", row["email"], row["email_error"]))
    return rejections
