"""Row validation shared by file drops, form webhooks and dry runs."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gtm_orchestration.lib.batch import in_parallel, scratch_connection
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS
from gtm_orchestration.lib.normalize import is_valid_email, normalize_email

# A value a spreadsheet would run as a formula when a rep opens an export (CSV injection).
# Leading + or - is allowed where the value is a plain number or phone number.
_FORMULA_START = r"^[=@\t\r]"
_SIGNED_START = r"^[+-]"
_SIGNED_NUMBER = r"^[+-][0-9 ().,/-]*$"
_names = itertools.count()


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


def find_rejections(con: duckdb.DuckDBPyConnection, rows: str | pa.Table) -> list[Rejection]:
    """Why each of ``rows`` (a relation of ``con`` or an Arrow table, with ``line`` and
    CANONICAL_FIELDS) that is not to be accepted is rejected, one Rejection per such row,
    by line.

    SQL tells the plain addresses and their domains (``plain_email_sql``), on all threads;
    the Python rules then run once per distinct domain of a plain address and per distinct
    other address, and the formula patterns only on values that begin with a character
    they can begin with.
    """
    if isinstance(rows, str):
        rows = con.execute(
            f"SELECT line, {', '.join(CANONICAL_FIELDS)} FROM {rows}"
        ).to_arrow_table()
    plain = plain_email_sql("email")
    name = f"checked_emails_{next(_names)}"
    con.register(name, pa.table({"email": rows.column("email")}))
    try:
        checked = con.execute(
            f"SELECT CASE WHEN {plain} THEN lower(split_part(email, '@', 2)) END AS domain, "
            f"CASE WHEN NOT {plain} THEN email END AS other_email FROM {name}"
        ).to_arrow_table()
    finally:
        con.unregister(name)
    domains = pc.dictionary_encode(checked["domain"].combine_chunks())
    takes_mail = pa.array(
        [domain_takes_mail(d) for d in domains.dictionary.to_pylist()], pa.bool_()
    )
    # A plain address has a domain; the others (a missing one too) have none.
    others = np.flatnonzero(domains.indices.is_null().to_numpy(zero_copy_only=False))
    addresses = pc.dictionary_encode(checked["other_email"].combine_chunks().take(others))
    address_errors = [email_check(raw)[1] for raw in addresses.dictionary.to_pylist()]
    # A missing address, the one null among the others, is never in the dictionary.
    errors = pa.array([*address_errors, email_check(None)[1]], pa.string()).take(
        pc.fill_null(addresses.indices, len(address_errors))
    )
    email_error = np.full(rows.num_rows, None, dtype=object)
    invalid = pc.invert(pc.fill_null(takes_mail.take(domains.indices), True))
    email_error[invalid.to_numpy(zero_copy_only=False)] = MALFORMED_EMAIL
    email_error[others] = errors.to_numpy(zero_copy_only=False)
    formula = np.full(rows.num_rows, None, dtype=object)
    # The first field holding a formula is named: the later ones are written first.
    found = in_parallel(_formulas, rows.select(CANONICAL_FIELDS).columns)
    for field, at in reversed(list(zip(CANONICAL_FIELDS, found, strict=True))):
        formula[at] = field
    rejected = np.flatnonzero((email_error != None) | (formula != None))  # noqa: E711
    values = rows.take(pa.array(rejected, pa.int64())).to_pylist()
    rejections = []
    for row, field, error in zip(values, formula[rejected], email_error[rejected], strict=True):
        if field is not None:
            reason = "value looks like a spreadsheet formula (CSV injection)"
            rejections.append(Rejection(row["line"], field, row[field], reason))
        else:
            rejections.append(Rejection(row["line"], "email", row["email"], error))
    return sorted(rejections, key=lambda r: r.line)


# The first bytes of a value looks_like_formula may be true of (each an ASCII character).
_FORMULA_FIRST_BYTES = pa.array([c.encode() for c in "=@\t\r+-"], pa.binary())


def _formulas(values: pa.ChunkedArray) -> np.ndarray:
    """The rows of ``values`` that look like a spreadsheet formula: looks_like_formula of
    the distinct values that begin with a character a formula can begin with (phone
    numbers with their + among them)."""
    first = pc.binary_slice(values.cast(pa.binary()), 0, 1)
    in_set = pc.is_in(first, value_set=_FORMULA_FIRST_BYTES)
    maybe = np.flatnonzero(pc.fill_null(in_set, False).to_numpy(zero_copy_only=False))
    candidates = pc.dictionary_encode(values.take(pa.array(maybe, pa.int64())).combine_chunks())
    looks = np.array([looks_like_formula(v) for v in candidates.dictionary.to_pylist()], dtype=bool)
    return maybe[looks[candidates.indices.to_numpy(zero_copy_only=False)]]
