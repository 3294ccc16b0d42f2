"""Row validation: e-mail addresses decided in SQL are decided as the rules decide them."""

from __future__ import annotations

import pyarrow as pa

from gtm_orchestration.lib.batch import scratch_connection
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS
from gtm_orchestration.lib.validation import (
    domain_takes_mail,
    email_check,
    looks_like_formula,
    plain_email_sql,
    validate_lead_rows,
)

FORMULA = "value looks like a spreadsheet formula (CSV injection)"
ADDRESSES = [
    "jane@acme.com",
    "Jane.Doe@Acme.CO.UK",
    "j_d+tag@acme-robotics.de",
    "x@a.b.c.com",
    "a@b.c",
    "x@-acme.com",
    "x@acme-.com",
    "x@acme.c0m",
    "x.@acme.com",
    ".x@acme.com",
    "x..y@acme.com",
    "x@acme..com",
    "x@acme.con",
    "x@localhost",
    "x@192.168.0.1",
    "x@co.uk",
    "x@xn--p1ai",
    "x@acme.xn--p1ai",
    "x@acme.com.",
    "x@@acme.com",
    "jane doe@acme.com",
    " jane@acme.com",
    "Jane <jane@acme.com>",
    "mailto:jane@acme.com",
    "'jane@acme.com'",
    "jane@bücher.de",
    "ünïcode@acme.com",
    "a" * 64 + "@acme.com",
    "a" * 65 + "@acme.com",
    "x@" + "a" * 63 + ".com",
    "x@" + "a" * 64 + ".com",
    "x@" + ".".join(["abcdefghij"] * 24) + ".com",
    "",
    "n/a",
    None,
]


def test_plain_addresses_are_decided_in_sql_as_the_rule_decides() -> None:
    con = scratch_connection()
    con.register("addresses", pa.table({"email": pa.array(ADDRESSES, pa.string())}))
    rows = con.execute(f"SELECT email, {plain_email_sql('email')} FROM addresses").fetchall()
    con.close()
    plain = [email for email, is_plain in rows if is_plain]
    assert "jane@acme.com" in plain and "x@acme.con" in plain
    for email in plain:
        domain = email.lower().split("@")[1]
        valid = domain_takes_mail(domain)
        assert email_check(email) == (email.lower(), None if valid else "malformed email address")


def test_rows_are_rejected_as_row_by_row() -> None:
    values = [*ADDRESSES, "ok@acme.com", "=cmd@acme.com"]
    columns = {f: [None] * len(values) for f in CANONICAL_FIELDS} | {"email": values}
    columns["company"] = [None, "@SUM(A1)", "-5", "+1 (415) 555-0100", "-2+3+cmd"] + [None] * (
        len(values) - 5
    )
    rows = pa.table(
        {"line": pa.array(range(2, len(values) + 2), pa.int32())}
        | {f: pa.array(v, pa.string()) for f, v in columns.items()}
    )
    accepted, rejections = validate_lead_rows(rows)

    expected = []
    for row in rows.to_pylist():
        formula = next(
            (f for f in CANONICAL_FIELDS if row[f] is not None and looks_like_formula(row[f])),
            None,
        )
        error = email_check(row["email"])[1]
        if formula is not None:
            expected.append((row["line"], formula, row[formula], FORMULA))
        elif error is not None:
            expected.append((row["line"], "email", row["email"], error))
    got = [(r.line, r.field, r.value, r.reason) for r in sorted(rejections, key=lambda r: r.line)]
    assert got == expected
    rejected = {r.line for r in rejections}
    assert accepted.to_pylist() == [r for r in rows.to_pylist() if r["line"] not in rejected]
