"""The transform stage: canonical raw rows -> normalized, classified, scored, routed leads.

Everything runs over a whole batch in DuckDB. Rules that need Python (dictionaries, title
classification, phone parsing) run once per distinct input value through
``distinct_lookup`` and are joined back, so a batch of a million rows with ten thousand
distinct titles classifies ten thousand titles. The same function serves file drops, form
webhooks, dry runs and backfills, and is deterministic: the same rows give the same leads.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from gtm_orchestration.lib.batch import distinct_lookup, join_on
from gtm_orchestration.lib.conversion import headcount_band, parse_headcount, parse_money
from gtm_orchestration.lib.normalize import (
    clean_company_name,
    domain_from_website,
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

# Columns the transform needs besides the canonical fields.
PROVENANCE_COLUMNS = ("source", "source_file", "line", "landed_at", "mapping_version")

LEAD_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "title",
    "company",
    "website",
    "phone",
    "country",
    "country_code",
    "state",
    "city",
    "industry",
    "company_industry",
    "annual_revenue",
    "employees",
    "employees_band",
    "domain",
    "function",
    "seniority",
    "persona",
    "persona_rule",
    "fit_score",
    "fit_reasons",
    "territory",
    "owner_id",
    "routing_rule",
    "lifecycle_stage",
    "source",
    "mapping_version",
    "flags",
    "source_file",
    "line",
    "landed_at",
    "records_merged",
)

# Lead columns computed once the records of one email are merged.
_DERIVED_AFTER_MERGE = frozenset(
    (
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
)

COMPANY_COLUMNS = (
    "domain",
    "company",
    "industry",
    "country",
    "country_code",
    "state",
    "employees",
    "annual_revenue",
    "fit_score",
    "fit_reasons",
    "territory",
    "leads",
)

_S = pa.string()


def _email(raw: str | None) -> tuple[str | None]:
    return (normalize_email(raw),)


def _name(raw: str | None) -> tuple[str | None]:
    return (normalize_person_name(raw),)


def _title(raw: str | None) -> tuple[str, str, str, str]:
    c = classify_title(raw)
    return c.function, c.seniority, c.persona, c.rule


def _company(raw: str | None) -> tuple[str | None]:
    return (clean_company_name(raw),)


def _website_domain(raw: str | None) -> tuple[str | None]:
    return (domain_from_website(raw),)


def _email_domain(domain: str | None) -> tuple[str | None]:
    if not domain or is_free_email_domain(domain):
        return (None,)
    return (domain.lower(),)


def _country(raw: str | None) -> tuple[str | None, str | None, str | None]:
    if raw is None:
        return None, None, None
    found = normalize_country(raw)
    if found is None:
        return None, None, f"country: not a known country ({raw!r})"
    return found[0], found[1], None


def _region(raw: str | None, country_code: str | None) -> tuple[str | None]:
    return (normalize_region(raw, country_code),)


def _industry(raw: str | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    value = normalize_industry(raw)
    return value, None if value else f"industry: not in the industry picklist ({raw!r})"


def _money(raw: str | None) -> tuple[float | None, str | None]:
    converted = parse_money(raw)
    flag = f"annual_revenue: {converted.error} ({raw!r})" if converted.error else None
    return converted.value, flag


def _headcount(raw: str | None) -> tuple[int | None, str | None, str | None]:
    converted = parse_headcount(raw)
    flag = f"employees: {converted.error} ({raw!r})" if converted.error else None
    value = None if converted.value is None else int(converted.value)
    return value, headcount_band(value), flag


def _phone(raw: str | None, country_code: str | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    converted = normalize_phone(raw, country_code)
    if converted.error:
        return raw, f"phone: {converted.error} ({raw!r})"
    return str(converted.value), None


def _fit(
    industry: str | None,
    employees: int | None,
    country_code: str | None,
    seniority: str | None,
    function: str | None,
) -> tuple[int, str]:
    score = score_fit(
        industry=industry,
        employees=employees,
        country_code=country_code,
        seniority=seniority,
        function=function,
    )
    return score.value, "; ".join(score.reasons)


def _route(
    email: str,
    domain: str | None,
    country_code: str | None,
    state: str | None,
    employees: int | None,
) -> tuple[str, str | None, str]:
    route = route_lead(
        email=email, domain=domain, country_code=country_code, state=state, employees=employees
    )
    return route.territory, route.owner_id, route.rule


def _lookup(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    alias: str,
    expressions: list[str],
    rule: object,
    fields: list[tuple[str, pa.DataType]],
) -> str:
    """Build a lookup and return its LEFT JOIN clause under ``alias``."""
    name = distinct_lookup(con, relation, expressions, rule, pa.schema(fields))  # type: ignore[arg-type]
    on = join_on(alias, [f"r.{x}" for x in expressions])
    return f"LEFT JOIN {name} AS {alias} ON {on}"


def transform_leads(con: duckdb.DuckDBPyConnection, raw_relation: str) -> tuple[pa.Table, pa.Table]:
    """Transform the canonical rows in ``raw_relation`` into leads and companies.

    ``raw_relation`` has the canonical fields and PROVENANCE_COLUMNS. Returns
    ``(leads, companies)``: one lead per normalized email (the newest non-empty value of
    each field wins) and one company per domain, columns LEAD_COLUMNS / COMPANY_COLUMNS.
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE t_in AS SELECT *, "
        f"row_number() OVER (ORDER BY landed_at, source_file, line) AS seq FROM {raw_relation}"
    )
    joins = [
        _lookup(con, "t_in", "e", ["email"], _email, [("v", _S)]),
        _lookup(con, "t_in", "fn", ["first_name"], _name, [("v", _S)]),
        _lookup(con, "t_in", "ln", ["last_name"], _name, [("v", _S)]),
        _lookup(con, "t_in", "co", ["company"], _company, [("v", _S)]),
        _lookup(con, "t_in", "wd", ["website"], _website_domain, [("v", _S)]),
        _lookup(
            con, "t_in", "ct", ["country"], _country, [("name", _S), ("code", _S), ("flag", _S)]
        ),
        _lookup(con, "t_in", "ind", ["industry"], _industry, [("v", _S), ("flag", _S)]),
        _lookup(
            con, "t_in", "rev", ["annual_revenue"], _money, [("v", pa.float64()), ("flag", _S)]
        ),
        _lookup(
            con,
            "t_in",
            "emp",
            ["employees"],
            _headcount,
            [("v", pa.int64()), ("band", _S), ("flag", _S)],
        ),
        _lookup(
            con,
            "t_in",
            "ttl",
            ["title"],
            _title,
            [("function", _S), ("seniority", _S), ("persona", _S), ("rule", _S)],
        ),
    ]
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE t_norm AS
        SELECT r.seq, r.source, r.source_file, r.line, r.landed_at, r.mapping_version,
               e.v AS email, fn.v AS first_name, ln.v AS last_name,
               nullif(trim(r.title), '') AS title, co.v AS company, r.website,
               r.phone AS raw_phone, ct.name AS country, ct.code AS country_code,
               r.state AS raw_state, nullif(trim(r.city), '') AS city,
               coalesce(ind.v, r.industry) AS industry, ind.v AS company_industry,
               rev.v AS annual_revenue, emp.v AS employees, emp.band AS employees_band,
               coalesce(wd.v, split_part(e.v, '@', 2)) AS candidate_domain,
               wd.v IS NOT NULL AS domain_from_website,
               ttl.function, ttl.seniority, ttl.persona, ttl.rule AS persona_rule,
               concat_ws('; ', ct.flag, ind.flag, rev.flag, emp.flag) AS flags
        FROM t_in r {" ".join(joins)}
        """
    )
    # Free-mail domains never become companies; the rule runs per distinct domain.
    dom = _lookup(con, "t_norm", "fd", ["candidate_domain"], _email_domain, [("v", _S)])
    reg = _lookup(con, "t_norm", "rg", ["raw_state", "country_code"], _region, [("v", _S)])
    ph = _lookup(
        con, "t_norm", "ph", ["raw_phone", "country_code"], _phone, [("v", _S), ("flag", _S)]
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE t_rows AS
        SELECT r.*, CASE WHEN r.domain_from_website THEN r.candidate_domain ELSE fd.v END
                    AS domain,
               rg.v AS state, ph.v AS phone,
               concat_ws('; ', nullif(r.flags, ''), ph.flag) AS all_flags
        FROM t_norm r {dom} {reg} {ph}
        """
    )
    # Per email, the newest non-empty value of each field wins; the rest is derived later.
    newest = [c for c in LEAD_COLUMNS if c not in _DERIVED_AFTER_MERGE]
    picks = ",\n".join(f"arg_max({c}, seq) FILTER (WHERE {c} IS NOT NULL) AS {c}" for c in newest)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE t_leads AS
        SELECT email, {picks},
               string_agg(DISTINCT nullif(all_flags, ''), '; '
                          ORDER BY nullif(all_flags, '')) AS flags,
               count(*) AS records_merged
        FROM t_rows GROUP BY email
        """
    )
    fit = _lookup(
        con,
        "t_leads",
        "f",
        ["company_industry", "employees", "country_code", "seniority", "function"],
        _fit,
        [("score", pa.int64()), ("reasons", _S)],
    )
    route = _lookup(
        con,
        "t_leads",
        "rt",
        ["email", "domain", "country_code", "state", "employees"],
        _route,
        [("territory", _S), ("owner", _S), ("rule", _S)],
    )
    select = {c: f"r.{c}" for c in LEAD_COLUMNS} | {
        "fit_score": "f.score",
        "fit_reasons": "f.reasons",
        "territory": "rt.territory",
        "owner_id": "rt.owner",
        "routing_rule": "rt.rule",
        "lifecycle_stage": "'lead'",
    }
    columns = ", ".join(f"{expr} AS {name}" for name, expr in select.items())
    leads = con.sql(f"SELECT {columns} FROM t_leads r {fit} {route} ORDER BY r.email")
    leads_table = leads.to_arrow_table()
    con.register("t_out_leads", leads_table)
    companies = _companies(con, "t_out_leads")
    return leads_table, companies


def _company_fit(
    industry: str | None, employees: int | None, country_code: str | None
) -> tuple[int, str]:
    return _fit(industry, employees, country_code, None, None)


def _company_route(
    domain: str, country_code: str | None, state: str | None, employees: int | None
) -> tuple[str]:
    route = route_lead(
        email=f"@{domain}",
        domain=domain,
        country_code=country_code,
        state=state,
        employees=employees,
    )
    return (route.territory,)


def _companies(con: duckdb.DuckDBPyConnection, leads: str) -> pa.Table:
    """One company per domain: the newest non-empty firmographics among its leads."""
    newest = ["company", "company_industry", "country", "country_code", "state", "annual_revenue"]
    picks = ", ".join(
        f"arg_max({c}, landed_at) FILTER (WHERE {c} IS NOT NULL) AS {c}" for c in newest
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE t_companies AS
        SELECT domain, {picks}, max(employees) AS employees, count(*) AS leads
        FROM {leads} WHERE domain IS NOT NULL GROUP BY domain
        """
    )
    fit = _lookup(
        con,
        "t_companies",
        "f",
        ["company_industry", "employees", "country_code"],
        _company_fit,
        [("score", pa.int64()), ("reasons", _S)],
    )
    route = _lookup(
        con,
        "t_companies",
        "rt",
        ["domain", "country_code", "state", "employees"],
        _company_route,
        [("territory", _S)],
    )
    return con.sql(
        f"""
        SELECT r.domain, r.company, r.company_industry AS industry, r.country, r.country_code,
               r.state, r.employees, r.annual_revenue, f.score AS fit_score,
               f.reasons AS fit_reasons, rt.territory, r.leads
        FROM t_companies r {fit} {route} ORDER BY r.domain
        """
    ).to_arrow_table()
