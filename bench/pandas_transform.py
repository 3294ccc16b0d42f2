"""The transform stage written the straightforward way in pandas, for ``bench/transform.py``.

``pd.read_csv`` reads the file; the project's own rules (``email_check``,
``looks_like_formula``, ``normalize_*``, ``parse_money``, ``classify_title``, ``score_fit``,
``route_lead``, ``format_value``) run value by value over each column and row by row over
zipped columns; ``groupby`` merges the records of one e-mail (the newest non-empty value
of each field wins) and makes the companies. It follows ``lib/transform.py`` rule for rule,
so that its leads and CRM payloads are those of the stage.

One difference it keeps, as pandas reads CSV: a row with fewer fields than the header is
padded with empty values, where the stage rejects it. Rows with more fields are rejected
by both (``bench/lead_generator.py`` makes only those).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from gtm_orchestration.lib.conversion import (
    headcount_band,
    parse_bool,
    parse_date,
    parse_headcount,
    parse_money,
    to_crm_currency,
)
from gtm_orchestration.lib.crm_schema import ObjectType, Payload, field_ownership, format_value
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS, MappingRegistry, load_registry
from gtm_orchestration.lib.normalize import (
    clean_company_name,
    domain_from_website,
    identity_email,
    is_free_email_domain,
    normalize_country,
    normalize_email,
    normalize_industry,
    normalize_person_name,
    normalize_phone,
    normalize_region,
)
from gtm_orchestration.lib.personas import classify_title
from gtm_orchestration.lib.routing import route_lead
from gtm_orchestration.lib.scoring import score_fit
from gtm_orchestration.lib.transform import COMPANY_COLUMNS, LEAD_COLUMNS
from gtm_orchestration.lib.validation import email_check, looks_like_formula

# Columns read beyond the header's, so that a row with a field too many is seen as such.
_SPARE_COLUMNS = 8
# One record's flags, apart until the merge (as the transform keeps them).
FLAG_SEPARATOR = "\x1f"

# Lead columns taken from the newest record of an e-mail that has them.
_NEWEST = [
    c
    for c in LEAD_COLUMNS
    if c
    not in (
        "email",
        "fit_score",
        "fit_reasons",
        "territory",
        "owner_id",
        "routing_rule",
        "lifecycle_stage",
        "flags",
        "records_merged",
    )
]


def transform_file(
    path: Path, source_name: str, registry: MappingRegistry, landed_at: datetime
) -> tuple[pd.DataFrame, pd.DataFrame, list[Payload], list[Payload]]:
    """Leads, companies and the CRM payloads of both for the file at ``path``."""
    rows = _accepted_rows(path, source_name, registry)
    rows["source"] = source_name
    rows["source_file"] = str(path)
    rows["landed_at"] = landed_at
    rows["mapping_version"] = registry.version
    leads = _leads(_normalized(rows))
    companies = _companies(leads)
    contacts = _payloads(_records(leads), registry.crm["contacts"], "contacts")
    accounts = _payloads(_records(companies), registry.crm["companies"], "companies")
    return leads, companies, contacts, accounts


def _payloads(
    records: list[dict[str, Any]], mapping: dict[str, str], object_type: ObjectType
) -> list[Payload]:
    """Record by record: each written property's value through format_value, empty ones
    left out."""
    unique = "email" if object_type == "contacts" else "domain"
    excluded = field_ownership().not_written(object_type)
    payloads = []
    for record in records:
        properties = {}
        for prop, column in mapping.items():
            value = format_value(record.get(column))
            if prop not in excluded and value is not None:
                properties[prop] = value
        payloads.append(Payload(properties[unique], properties))
    return payloads


def _accepted_rows(path: Path, source_name: str, registry: MappingRegistry) -> pd.DataFrame:
    """The file's rows that pass validation: ``line`` and the canonical fields."""
    width = len(pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns)
    raw = pd.read_csv(
        path,
        header=None,
        names=range(width + _SPARE_COLUMNS),
        dtype=object,
        na_filter=False,
        skip_blank_lines=False,
        encoding="utf-8-sig",
    )
    check = registry.source(source_name).check_headers(list(raw.iloc[0, :width]))
    if not check.ok:
        raise ValueError(f"{path}: {check.describe(source_name)}")
    body = raw.iloc[1:].reset_index(drop=True)
    # A record starts one line after the previous one ended; quoted values hold line breaks.
    breaks = sum(body[c].str.count("\n") for c in body.columns)
    body["line"] = 2 + body.index + breaks.cumsum().shift(fill_value=0)
    fields = list(range(width))
    blank = body[fields].apply(lambda column: column.str.strip() == "").all(axis=1)
    too_wide = (body[list(range(width, width + _SPARE_COLUMNS))] != "").any(axis=1)
    body = body[~blank & ~too_wide]

    rows = pd.DataFrame({"line": body["line"]})
    for canonical in CANONICAL_FIELDS:
        rows[canonical] = None
    for index, canonical in check.columns.items():
        rows[canonical] = _each(body[index], lambda value: value.strip() or None)
    email_error = _each(rows["email"], lambda raw: email_check(raw)[1])
    formula = pd.Series(False, index=rows.index)
    for canonical in CANONICAL_FIELDS:
        formula |= _each(rows[canonical], lambda v: v is not None and looks_like_formula(v))
    return rows[email_error.isna() & ~formula].reset_index(drop=True)


def _normalized(rows: pd.DataFrame) -> pd.DataFrame:
    """Each row normalized, classified and flagged, as the transform does before merging."""
    out = pd.DataFrame(index=rows.index)
    out["seq"] = rows["line"].rank(method="first")
    for column in ("source", "source_file", "line", "landed_at", "mapping_version"):
        out[column] = rows[column]
    out["email"] = _each(rows["email"], normalize_email)
    out["identity"] = _each(rows["email"], identity_email)
    out["first_name"] = _each(rows["first_name"], normalize_person_name)
    out["last_name"] = _each(rows["last_name"], normalize_person_name)
    out["title"] = _each(rows["title"], _trimmed)
    out["company"] = _each(rows["company"], clean_company_name)
    out["website"] = rows["website"]
    country = _each(rows["country"], _country)
    out["country"] = _each(country, lambda c: c[0])
    out["country_code"] = _each(country, lambda c: c[1])
    out["city"] = _each(rows["city"], _trimmed)
    industry = _each(rows["industry"], lambda raw: None if raw is None else normalize_industry(raw))
    out["industry"] = _objects(
        [i if i is not None else raw for i, raw in zip(industry, rows["industry"], strict=True)],
        out.index,
    )
    out["company_industry"] = industry
    revenue = _each(rows["annual_revenue"], lambda raw: to_crm_currency(parse_money(raw)))
    out["annual_revenue"] = _each(revenue, lambda c: c.value)
    headcount = _each(rows["employees"], parse_headcount)
    out["employees"] = _each(headcount, lambda c: None if c.value is None else int(c.value))
    out["employees_band"] = _each(out["employees"], headcount_band)
    website_domain = _each(rows["website"], domain_from_website)
    title = _each(rows["title"], classify_title)
    out["function"] = _each(title, lambda c: c.function)
    out["seniority"] = _each(title, lambda c: c.seniority)
    out["persona"] = _each(title, lambda c: c.persona)
    out["persona_rule"] = _each(title, lambda c: c.rule)
    out["domain"] = _objects(
        [
            website if website is not None else _company_domain(email)
            for website, email in zip(website_domain, out["email"], strict=True)
        ],
        out.index,
    )
    out["state"] = _objects(
        [
            normalize_region(state, code)
            for state, code in zip(rows["state"], out["country_code"], strict=True)
        ],
        out.index,
    )
    phone = [
        _phone(raw, code) for raw, code in zip(rows["phone"], out["country_code"], strict=True)
    ]
    out["phone"] = _objects([value for value, _ in phone], out.index)
    submitted = [
        parse_date(raw, load_registry(version).sources[source].spec.date_locale)
        for raw, source, version in zip(
            rows["submitted_at"], rows["source"], rows["mapping_version"], strict=True
        )
    ]
    out["submitted_at"] = _objects(
        [c.value.date() if isinstance(c.value, datetime) else c.value for c in submitted],
        out.index,
    )
    opt_in = _each(rows["marketing_opt_in"], parse_bool)
    out["marketing_opt_in"] = _each(opt_in, lambda c: c.value)
    flags = zip(
        _each(country, lambda c: c[2]),
        [_industry_flag(raw, i) for raw, i in zip(rows["industry"], industry, strict=True)],
        [
            _flag("annual_revenue", c.error, raw)
            for c, raw in zip(revenue, rows["annual_revenue"], strict=True)
        ],
        [
            _flag("employees", c.error, raw)
            for c, raw in zip(headcount, rows["employees"], strict=True)
        ],
        [flag for _, flag in phone],
        [
            _flag("submitted_at", c.error, raw)
            for c, raw in zip(submitted, rows["submitted_at"], strict=True)
        ],
        [
            _flag("marketing_opt_in", c.error, raw)
            for c, raw in zip(opt_in, rows["marketing_opt_in"], strict=True)
        ],
        strict=True,
    )
    out["flags"] = _objects([FLAG_SEPARATOR.join(f for f in row if f) for row in flags], out.index)
    return out


def _leads(rows: pd.DataFrame) -> pd.DataFrame:
    """One lead per person (identity of the e-mail): the address first seen, the newest
    non-empty value of each field, then fit and route."""
    rows = rows.sort_values("seq")
    by_person = rows.groupby("identity", sort=True)
    leads = by_person[_NEWEST].last()
    leads["email"] = by_person["email"].first()
    leads["flags"] = by_person["flags"].agg(_merged_flags)
    leads["records_merged"] = by_person.size()
    leads = leads.reset_index(drop=True).astype(object).where(lambda df: df.notna(), None)
    fit = [
        score_fit(industry=i, employees=e, country_code=c, seniority=s, function=f)
        for i, e, c, s, f in zip(
            leads["company_industry"],
            leads["employees"],
            leads["country_code"],
            leads["seniority"],
            leads["function"],
            strict=True,
        )
    ]
    leads["fit_score"] = [score.value for score in fit]
    leads["fit_reasons"] = ["; ".join(score.reasons) for score in fit]
    routes = [
        route_lead(email=e, domain=d, country_code=c, state=s, employees=n)
        for e, d, c, s, n in zip(
            leads["email"],
            leads["domain"],
            leads["country_code"],
            leads["state"],
            leads["employees"],
            strict=True,
        )
    ]
    leads["territory"] = [route.territory for route in routes]
    leads["owner_id"] = _objects([route.owner_id for route in routes], leads.index)
    leads["routing_rule"] = [route.rule for route in routes]
    leads["lifecycle_stage"] = "lead"
    return leads[list(LEAD_COLUMNS)]


def _companies(leads: pd.DataFrame) -> pd.DataFrame:
    """One company per domain: the newest non-empty firmographics among its leads."""
    with_domain = leads[leads["domain"].notna()].sort_values(["landed_at", "source_file", "line"])
    by_domain = with_domain.groupby("domain", sort=True)
    newest = ["company", "company_industry", "country", "country_code", "state"]
    companies = by_domain[[*newest, "annual_revenue"]].last()
    most = by_domain["employees"].max()
    companies["employees"] = _objects([None if pd.isna(n) else int(n) for n in most], most.index)
    companies["leads"] = by_domain.size()
    companies = companies.reset_index().astype(object).where(lambda df: df.notna(), None)
    fit = [
        score_fit(industry=i, employees=e, country_code=c, seniority=None, function=None)
        for i, e, c in zip(
            companies["company_industry"],
            companies["employees"],
            companies["country_code"],
            strict=True,
        )
    ]
    companies["fit_score"] = [score.value for score in fit]
    companies["fit_reasons"] = ["; ".join(score.reasons) for score in fit]
    companies["territory"] = [
        route_lead(email=f"@{d}", domain=d, country_code=c, state=s, employees=n).territory
        for d, c, s, n in zip(
            companies["domain"],
            companies["country_code"],
            companies["state"],
            companies["employees"],
            strict=True,
        )
    ]
    companies = companies.rename(columns={"company_industry": "industry"})
    return companies[list(COMPANY_COLUMNS)]


def _each(values: pd.Series, rule: Callable[[Any], Any]) -> pd.Series:
    """``rule`` of each value, the results as they are: Series.map would infer a string or
    float dtype and turn None into NaN."""
    return pd.Series([rule(value) for value in values], index=values.index, dtype=object)


def _objects(values: list[Any], index: pd.Index) -> pd.Series:
    return pd.Series(values, index=index, dtype=object)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _trimmed(raw: str | None) -> str | None:
    # As DuckDB's trim(): spaces only.
    return None if raw is None else raw.strip(" ") or None


def _country(raw: str | None) -> tuple[str | None, str | None, str | None]:
    if raw is None:
        return None, None, None
    found = normalize_country(raw)
    if found is None:
        return None, None, f"country: not a known country ({raw!r})"
    return found[0], found[1], None


def _company_domain(email: str | None) -> str | None:
    if email is None:
        return None
    domain = email.split("@")[1] if "@" in email else ""
    return None if not domain or is_free_email_domain(domain) else domain.lower()


def _phone(raw: str | None, country_code: str | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    converted = normalize_phone(raw, country_code)
    if converted.error:
        return raw, f"phone: {converted.error} ({raw!r})"
    return str(converted.value), None


def _industry_flag(raw: str | None, industry: str | None) -> str | None:
    if raw is None or industry:
        return None
    return f"industry: not in the industry picklist ({raw!r})"


def _flag(field: str, error: str | None, raw: str | None) -> str | None:
    return f"{field}: {error} ({raw!r})" if error else None


def _merged_flags(flags: Iterable[str]) -> str | None:
    """A lead's flags: one record's in field order, several records' each once, sorted."""
    rows = list(flags)
    if len(rows) == 1:
        return rows[0].replace(FLAG_SEPARATOR, "; ") or None
    every = {flag for row in rows for flag in row.split(FLAG_SEPARATOR) if flag}
    return "; ".join(sorted(every)) or None
