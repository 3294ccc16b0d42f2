"""The transform stage: canonical raw rows -> normalized, classified, scored, routed leads.

Everything runs over a whole batch in DuckDB. Rules that need Python (dictionaries, title
classification, phone parsing) run once per distinct input value through
``distinct_lookup`` and are joined back, so a batch of a million rows with ten thousand
distinct titles classifies ten thousand titles. What SQL decides as the rule does stays in
SQL: plain e-mail addresses in lower case, the round robin's deal of owners. The rules that
read a whole lead (fit score, route) run once per combination of the values they tell
apart, a million leads of five thousand companies taking a few thousand calls. The same
function serves file drops, form webhooks, dry runs and backfills, and is deterministic:
the same rows give the same leads.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from typing import Any

import duckdb
import pyarrow as pa

from gtm_orchestration.lib.batch import distinct_lookup, join_on
from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.conversion import (
    DEFAULT_DATE_LOCALE,
    headcount_band,
    parse_bool,
    parse_date,
    parse_headcount,
    parse_money,
    to_crm_currency,
)
from gtm_orchestration.lib.identity import as_is_email_sql, identity_rules
from gtm_orchestration.lib.mapping import load_registry
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
from gtm_orchestration.lib.routing import (
    ROUND_ROBIN_SQL,
    default_territory_rules,
    round_robin_owner,
    route_lead,
)
from gtm_orchestration.lib.scoring import score_fit
from gtm_orchestration.lib.validation import plain_email_sql

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
    "submitted_at",
    "marketing_opt_in",
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
_tables = itertools.count()
# Leads sorted by email at a time (see transform_leads).
_SORTED_AT_ONCE = 250_000


def _email(raw: str | None) -> tuple[str | None, str | None]:
    return normalize_email(raw), identity_email(raw)


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
    # The CRM's annualrevenue is a plain number in its own currency.
    converted = to_crm_currency(parse_money(raw))
    flag = f"annual_revenue: {converted.error} ({raw!r})" if converted.error else None
    return converted.value, flag


def _headcount(raw: str | None) -> tuple[int | None, str | None, str | None]:
    converted = parse_headcount(raw)
    flag = f"employees: {converted.error} ({raw!r})" if converted.error else None
    value = None if converted.value is None else int(converted.value)
    return value, headcount_band(value), flag


def _submitted_at(raw: str | None, source: str, version: int) -> tuple[date | None, str | None]:
    # Numeric dates are read as the source writes them (its date_locale in the registry
    # version the row was landed under); a moment is kept as its UTC day.
    converted = parse_date(raw, _date_locale(source, version))
    if converted.error:
        return None, f"submitted_at: {converted.error} ({raw!r})"
    value = converted.value
    return (value.date() if isinstance(value, datetime) else value), None


@cache
def _date_locale(source: str, version: int) -> str:
    try:
        registry = load_registry(version)
    except ConfigError:  # a version no longer on disk: the source reads as it does now
        registry = load_registry()
    spec = registry.sources.get(source)
    return spec.spec.date_locale if spec else DEFAULT_DATE_LOCALE


def _opt_in(raw: str | None) -> tuple[bool | None, str | None]:
    converted = parse_bool(raw)
    flag = f"marketing_opt_in: {converted.error} ({raw!r})" if converted.error else None
    return converted.value, flag


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


@cache
def _round_robin_pools() -> dict[str, tuple[str, ...]] | None:
    """The owners each round robin deals from, by the rules it names in ``Route.rule``
    (``territory:NA West;segment:NA Enterprise``, ``unassigned``); None when two territories,
    or two segments of one, share a name, so that the rule does not tell the owners."""
    rules = default_territory_rules()
    pools = {"unassigned": tuple(rules.unassigned.owners)}
    for territory, _ in rules.territories:
        named = f"territory:{territory.name}"
        if named in pools:
            return None
        pools[named] = tuple(territory.owners)
        for segment in territory.segments:
            if f"{named};segment:{segment.name}" in pools:
                return None
            pools[f"{named};segment:{segment.name}"] = tuple(segment.owners)
    return pools


def _route_domain(
    email_domain: str,
    domain: str | None,
    country_code: str | None,
    state: str | None,
    employees: int | None,
) -> tuple[str, str | None, str, list[str] | None, bool]:
    """The route of the addresses at ``email_domain`` with these firmographics.

    ``route_lead`` reads an address only for its domain and for the round robin, so one
    call per domain and firmographics serves every address, with the owners the round
    robin deals from for SQL to deal by ``ROUND_ROBIN_SQL``. Returns territory, owner (when
    not dealt), rule, owners to deal from (None when not dealt) and whether the route holds
    for the domain's addresses (False sends them to ``route_lead`` one by one).
    """
    stand_in = f"@{email_domain}"
    route = route_lead(
        email=stand_in, domain=domain, country_code=country_code, state=state, employees=employees
    )
    if not route.rule.endswith(";owner:round_robin"):
        return route.territory, route.owner_id, route.rule, None, True
    pools = _round_robin_pools()
    owners = None if pools is None else pools.get(route.rule.removesuffix(";owner:round_robin"))
    dealt = owners is not None and round_robin_owner(stand_in, list(owners)) == route.owner_id
    return route.territory, None, route.rule, list(owners) if dealt else None, dealt


def _lookup(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    alias: str,
    expressions: list[str],
    rule: object,
    fields: list[tuple[str, pa.DataType]],
    keys: list[str] | None = None,
) -> str:
    """Build a lookup of ``rule`` over ``expressions`` of ``relation`` and return its LEFT
    JOIN clause under ``alias``, on ``keys`` (by default ``r.`` and each expression)."""
    name = distinct_lookup(con, relation, expressions, rule, pa.schema(fields))  # type: ignore[arg-type]
    on = join_on(alias, keys or [f"r.{x}" for x in expressions])
    return f"LEFT JOIN {name} AS {alias} ON {on}"


def transform_leads(con: duckdb.DuckDBPyConnection, raw_relation: str) -> tuple[pa.Table, pa.Table]:
    """Transform the canonical rows in ``raw_relation`` into leads and companies.

    ``raw_relation`` has the canonical fields and PROVENANCE_COLUMNS. Returns
    ``(leads, companies)``: one lead per normalized email (the newest non-empty value of
    each field wins) and one company per domain, columns LEAD_COLUMNS / COMPANY_COLUMNS.
    """
    # A table of DuckDB's own, not the relation as given: DuckDB 1.5 estimates one row for
    # an Arrow scan and would build its hash joins on the million raw rows, not the lookups.
    raw = "t_raw"
    con.execute(f"CREATE OR REPLACE TEMP TABLE t_raw AS FROM {raw_relation}")
    # A plain address (see email_identity) is its own normalized form and identity.
    plain = as_is_email_sql("r.email")
    # Rows enriched on the way in (enrich_rows) say when their lookup failed.
    raw_columns = {c[0] for c in con.sql(f"DESCRIBE {raw}").fetchall()}
    enrichment_flag = "r.enrichment_flag" if "enrichment_flag" in raw_columns else "NULL"
    # A plain address normalizes to itself in lower case; the rules read the others.
    emails = distinct_lookup(
        con,
        f"(SELECT email FROM {raw} AS r WHERE NOT {plain})",
        ["email"],
        _email,
        pa.schema([("v", _S), ("identity", _S)]),
    )
    # The lookup holds only the other addresses: a plain one finds no row.
    email_join = f"LEFT JOIN {emails} AS e ON {join_on('e', ['r.email'])}"
    # A row the lookup does not hold has a plain address: the test is the join, not the
    # regular expression again (an empty address is not held either, and stays empty).
    email = "CASE WHEN e.k0 IS NULL THEN lower(r.email) ELSE e.v END"
    # The records of one person are merged on the identity of their address.
    identity = "CASE WHEN e.k0 IS NULL THEN lower(r.email) ELSE coalesce(e.identity, e.v) END"
    website = _lookup(con, raw, "wd", ["website"], _website_domain, [("v", _S)])
    country = _lookup(
        con, raw, "ct", ["country"], _country, [("name", _S), ("code", _S), ("flag", _S)]
    )
    joins = [
        email_join,
        website,
        country,
        _lookup(con, raw, "fn", ["first_name"], _name, [("v", _S)]),
        _lookup(con, raw, "ln", ["last_name"], _name, [("v", _S)]),
        _lookup(con, raw, "co", ["company"], _company, [("v", _S)]),
        _lookup(con, raw, "ind", ["industry"], _industry, [("v", _S), ("flag", _S)]),
        _lookup(con, raw, "rev", ["annual_revenue"], _money, [("v", pa.float64()), ("flag", _S)]),
        _lookup(
            con,
            raw,
            "emp",
            ["employees"],
            _headcount,
            [("v", pa.int64()), ("band", _S), ("flag", _S)],
        ),
        _lookup(
            con,
            raw,
            "sub",
            ["submitted_at", "source", "mapping_version"],
            _submitted_at,
            [("v", pa.date32()), ("flag", _S)],
        ),
        _lookup(con, raw, "opt", ["marketing_opt_in"], _opt_in, [("v", pa.bool_()), ("flag", _S)]),
        _lookup(
            con,
            raw,
            "ttl",
            ["title"],
            _title,
            [("function", _S), ("seniority", _S), ("persona", _S), ("rule", _S)],
        ),
    ]
    # Rules over values the first rules derive run on the few distinct raw combinations.
    email_domain = f"split_part({email}, '@', 2)"
    pairs = (
        f"(SELECT DISTINCT r.website, {email_domain} AS email_domain FROM {raw} AS r {email_join})"
    )
    joins.append(
        _lookup(
            con,
            "(SELECT DISTINCT coalesce(wd.v, r.email_domain) AS domain "
            f"FROM {pairs} AS r {website})",
            "fd",
            ["domain"],
            _email_domain,
            [("v", _S)],
            [f"coalesce(wd.v, {email_domain})"],
        )
    )
    # A number with its own international prefix reads the same in every country: such
    # numbers are looked up once, not once per country they come with.
    phone_country = "CASE WHEN starts_with(r.phone, '+') THEN NULL ELSE ct.code END"
    for alias, column, rule, fields, code in (
        ("rg", "state", _region, [("v", _S)], "ct.code"),
        ("ph", "phone", _phone, [("v", _S), ("flag", _S)], phone_country),
    ):
        joins.append(
            _lookup(
                con,
                f"(SELECT DISTINCT r.{column}, {code} AS code "
                f"FROM (SELECT DISTINCT {column}, country FROM {raw}) AS r {country})",
                alias,
                [column, "code"],
                rule,
                fields,
                [f"r.{column}", code],
            )
        )
    # Most emails have one row, taken as it is; only the rows of repeated emails are merged.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE t_repeated AS
        WITH identities AS (
            SELECT r.email, {identity} AS identity FROM {raw} AS r {email_join}
        ), repeated AS (
            SELECT identity FROM identities GROUP BY 1 HAVING count(*) > 1
        )
        SELECT DISTINCT r.email FROM identities AS r
        JOIN repeated AS d ON r.identity IS NOT DISTINCT FROM d.identity
        """
    )

    normalized = {
        "source": "r.source",
        "source_file": "r.source_file",
        "line": "r.line",
        "landed_at": "r.landed_at",
        "mapping_version": "r.mapping_version",
        "email": email,
        "identity": identity,
        "first_name": "fn.v",
        "last_name": "ln.v",
        "title": "nullif(trim(r.title), '')",
        "company": "co.v",
        "website": "r.website",
        "phone": "ph.v",
        "country": "ct.name",
        "country_code": "ct.code",
        "state": "rg.v",
        "city": "nullif(trim(r.city), '')",
        "industry": "coalesce(ind.v, r.industry)",
        "company_industry": "ind.v",
        "annual_revenue": "rev.v",
        "employees": "emp.v",
        "employees_band": "emp.band",
        "submitted_at": "sub.v",
        "marketing_opt_in": "opt.v",
        "domain": "CASE WHEN wd.v IS NOT NULL THEN wd.v ELSE fd.v END",
        "function": "ttl.function",
        "seniority": "ttl.seniority",
        "persona": "ttl.persona",
        "persona_rule": "ttl.rule",
        # One row's flags, apart by a control character until the merge joins them.
        "flags": "concat_ws(chr(31), ct.flag, ind.flag, rev.flag, emp.flag, ph.flag, sub.flag, "
        f"opt.flag, {enrichment_flag})",
    }
    newest = [c for c in LEAD_COLUMNS if c not in _DERIVED_AFTER_MERGE]
    select = ", ".join(f"{normalized[c]} AS {c}" for c in ["email", "identity", *newest, "flags"])

    def rows(repeated: str) -> str:
        return (
            "SELECT r.landed_at AS newest_at, r.source_file AS newest_file, "
            f"r.line AS newest_line, r.source AS newest_source, {select} "
            f"FROM {raw} AS r {repeated} JOIN t_repeated AS d "
            f"ON r.email IS NOT DISTINCT FROM d.email {' '.join(joins)}"
        )

    # The leads merged once, in no order; the rules that read a whole lead (fit, route) run
    # on the distinct values of the few columns they read.
    merged_leads = _packed_table(con)
    con.execute(
        f"CREATE TABLE {merged_leads} AS " + _merged(rows("ANTI"), rows("SEMI"), [*newest, "flags"])
    )
    for table in ("t_repeated", "t_raw"):
        con.execute(f"DROP TABLE {table}")
    _pack(con)
    fit = _fit_joins(con, merged_leads)
    route, route_columns = _route_joins(con, merged_leads)
    select_out = (
        {c: f"r.{c}" for c in LEAD_COLUMNS}
        | route_columns
        | {
            "fit_score": "f.score",
            "fit_reasons": "f.reasons",
            "lifecycle_stage": "'lead'",
        }
    )
    columns = ", ".join(f"{expr} AS {name}" for name, expr in select_out.items())
    # Sorted a range of identities at a time: sorting all leads at once holds every column
    # of them twice, beside the leads already out. Executed, not con.sql(): given
    # parameters, con.sql() runs the query into a relation of its own, and reading that
    # relation into Arrow costs several times the query itself.
    leads_table = pa.concat_tables(
        con.execute(
            f"SELECT {columns} FROM {merged_leads} AS r {fit} {route} "
            f"WHERE {_in_range('r.identity', lower, upper)} ORDER BY r.identity, r.email",
            {k: v for k, v in (("lower", lower), ("upper", upper)) if v is not None} or None,
        ).to_arrow_table()
        for lower, upper in _email_ranges(con, merged_leads)
    )
    con.execute(f"DROP TABLE {merged_leads}")
    con.register("t_out_leads", leads_table)
    companies = _companies(con, "t_out_leads")
    return leads_table, companies


# The in-memory database of the tables that transform_leads compresses (see _pack).
_PACKED = "transform_packed"


def _packed_table(con: duckdb.DuckDBPyConnection) -> str:
    """A name for a table of this call in the compressed in-memory database."""
    con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {_PACKED} (COMPRESS)")
    return f"{_PACKED}.main.merged_leads_{next(_tables)}"


def _pack(con: duckdb.DuckDBPyConnection) -> None:
    """Compress the tables of the compressed in-memory database, which DuckDB does when it
    checkpoints: a million merged leads take a fifth of the memory."""
    # When another thread writes there at this moment, the table is left as it is, larger.
    with contextlib.suppress(duckdb.TransactionException):
        con.execute(f"CHECKPOINT {_PACKED}")


def _email_ranges(
    con: duckdb.DuckDBPyConnection, leads: str
) -> list[tuple[str | None, str | None]]:
    """Ranges splitting the identities of ``leads`` into parts of about _SORTED_AT_ONCE, in
    order: (lower bound included, upper bound not), None for no bound."""
    (count,) = con.execute(f"SELECT count(*) FROM {leads}").fetchall()[0]
    parts = -(-count // _SORTED_AT_ONCE)
    if parts <= 1:
        return [(None, None)]
    quantiles = ", ".join(str(i / parts) for i in range(1, parts))
    query = f"SELECT quantile_disc(identity, [{quantiles}]) FROM {leads}"
    (bounds,) = con.execute(query).fetchall()[0]
    bounds = sorted(set(bounds))
    return list(zip([None, *bounds], [*bounds, None], strict=True))


def _in_range(column: str, lower: str | None, upper: str | None) -> str:
    """The condition that ``column`` is in the range (``$lower`` included, ``$upper`` not;
    None for no bound: the last range holds NULL too)."""
    conditions = []
    if lower is not None:
        conditions.append(f"{column} >= $lower")
    if upper is not None:
        conditions.append(f"{column} < $upper")
    where = " AND ".join(conditions) or "true"
    if lower is not None and upper is None:
        where = f"({where} OR {column} IS NULL)"
    return where


def _merged(single_rows: str, repeated_rows: str, columns: list[str]) -> str:
    """The query of the leads: the rows of ``single_rows`` (emails with one row) as they
    are, and those of ``repeated_rows`` merged by email: for each of ``columns``, the
    non-empty value of the source that ranks first for the field (``config/identity.yaml``),
    the newest (by ``newest_at``, ``newest_file``, ``newest_line``) among equals, the distinct
    ``flags`` of all its rows (when among ``columns``) and how many rows it has
    (``records_merged``). Records are one person when their address has the same
    ``identity``; the merged lead keeps the address the person was first seen with."""
    newest = [c for c in columns if c != "flags"]
    rules = identity_rules()

    def pick(column: str) -> str:
        rank = rules.rank_sql(column, "newest_source")
        order = "seq" if rank == "0" else f"{{'rank': {rank}, 'seq': seq}}"
        return f"arg_max({column}, {order}) FILTER (WHERE {column} IS NOT NULL) AS {column}"

    picks = ", ".join(pick(c) for c in newest)
    flags = ""
    single_flags = ""
    if "flags" in columns:
        # A flag that several of the rows carry (the same company's failed lookup) once.
        every_flag = "list_filter(flatten(list(string_split(flags, chr(31)))), lambda f: f <> '')"
        flags = (
            f", nullif(array_to_string(list_sort(list_distinct({every_flag})), '; '), '') AS flags"
        )
        single_flags = ", nullif(replace(flags, chr(31), '; '), '') AS flags"
    return f"""
        SELECT identity, email, {", ".join(newest)}{single_flags}, 1::BIGINT AS records_merged
        FROM ({single_rows})
        UNION ALL
        SELECT identity, arg_min(email, seq) AS email, {picks}{flags},
               count(*) AS records_merged
        FROM (
            SELECT *, row_number() OVER (ORDER BY newest_at, newest_file, newest_line) AS seq
            FROM ({repeated_rows})
        )
        GROUP BY identity
    """


def _representatives(
    con: duckdb.DuckDBPyConnection,
    leads: str,
    signatures: dict[str, Callable[[Any], object]],
) -> tuple[str, dict[str, str]]:
    """Stand-ins for values a rule treats alike, so that it runs on fewer distinct values.

    For each expression over ``r`` (a row of ``leads``) and its signature, the values with
    the same signature are represented by the first of them (None, then the smallest).
    Returns the LEFT JOIN clauses (on ``r``) and, for each expression, the expression of
    its representative.
    """
    joins = []
    representatives = {}
    for expression, signature in signatures.items():
        values = [
            value
            for (value,) in con.execute(
                f"SELECT DISTINCT {expression} FROM {leads} AS r"
            ).fetchall()
        ]
        values.sort(key=lambda value: (value is not None, value))
        first: dict[object, Any] = {}
        stand_ins = [first.setdefault(signature(value), value) for value in values]
        name = f"representatives_{next(_tables)}"
        con.register(name, pa.table({"k0": values, "rep": stand_ins}))
        joins.append(f"LEFT JOIN {name} ON {join_on(name, [expression])}")
        representatives[expression] = f"{name}.rep"
    return " ".join(joins), representatives


def _scored_alone(attribute: str) -> Callable[[Any], object]:
    """The score of a lead known only by ``attribute`` (a keyword of score_fit). The score
    adds up the points of each attribute (config/scoring.yaml), so values scoring alike on
    their own score alike with any other attributes."""
    unknown = dict.fromkeys(("industry", "employees", "country_code", "seniority", "function"))
    return lambda value: score_fit(**(unknown | {attribute: value}))


# The lead columns score_fit reads, by its keyword.
_FIT_INPUTS = {
    "industry": "company_industry",
    "employees": "employees",
    "country_code": "country_code",
    "seniority": "seniority",
    "function": "function",
}


def _fit_joins(con: duckdb.DuckDBPyConnection, leads: str) -> str:
    """LEFT JOIN clauses putting the fit score and reasons of each lead (as ``r``, with the
    columns of ``leads``) under ``f``: score_fit once per distinct combination of values
    that score differently."""
    joins, stand_in = _representatives(
        con,
        leads,
        {f"r.{column}": _scored_alone(keyword) for keyword, column in _FIT_INPUTS.items()},
    )
    keys = list(_FIT_INPUTS.values())
    inputs = ", ".join(f"{stand_in[f'r.{column}']} AS {column}" for column in keys)
    fit = _lookup(
        con,
        f"(SELECT {inputs} FROM {leads} AS r {joins})",
        "f",
        keys,
        _fit,
        [("score", pa.int64()), ("reasons", _S)],
        [stand_in[f"r.{column}"] for column in keys],
    )
    return f"{joins} {fit}"


@cache
def _segment_thresholds() -> tuple[int, ...]:
    rules = default_territory_rules()
    return tuple(
        sorted({s.min_employees for territory, _ in rules.territories for s in territory.segments})
    )


def _segments_reached(employees: int | None) -> object:
    # route_lead reads a headcount only against the segments' min_employees
    # (config/territories.yaml): headcounts between the same thresholds route alike.
    if employees is None:
        return None
    return sum(employees >= threshold for threshold in _segment_thresholds())


def _routed_by_domain(domain: str | None) -> object:
    # route_lead reads a lead's domains only to find a named account: the domains of no
    # named account route alike (as no domain at all).
    route = route_lead(email="", domain=domain, country_code=None, state=None, employees=None)
    return route.territory, route.rule


def _routed_by_email_domain(email_domain: str | None) -> object:
    route = route_lead(
        email=f"@{email_domain}", domain=None, country_code=None, state=None, employees=None
    )
    return route.territory, route.rule


def _aliased(expressions: list[str]) -> str:
    return ", ".join(f"{expression} AS k{i}" for i, expression in enumerate(expressions))


def _route_joins(con: duckdb.DuckDBPyConnection, leads: str) -> tuple[str, dict[str, str]]:
    """LEFT JOIN clauses for the route of each lead (as ``r``, with the columns of
    ``leads``), and the expressions of its ``territory``, ``owner_id`` and ``routing_rule``.

    route_lead runs once per distinct e-mail domain and firmographics of ``leads`` that
    route differently, the round robin deals the owners in SQL (see ``_route_domain``);
    addresses that are not plain, or whose owners the rules do not tell, are routed one
    by one.
    """
    email_domain = "split_part(r.email, '@', 2)"
    joins, stand_in = _representatives(
        con,
        leads,
        {
            email_domain: _routed_by_email_domain,
            "r.domain": _routed_by_domain,
            "r.employees": _segments_reached,
        },
    )
    by_domain_keys = [
        stand_in[email_domain],
        stand_in["r.domain"],
        "r.country_code",
        "r.state",
        stand_in["r.employees"],
    ]
    plain = plain_email_sql("r.email")
    # Whether the address is plain is a join key of its own (true in every row of the
    # lookup): the joins below compare keys only, so they stay hash joins.
    by_domain_keys = [plain, *by_domain_keys]
    by_domain = distinct_lookup(
        con,
        f"(SELECT {_aliased(by_domain_keys)} FROM {leads} AS r {joins} WHERE {plain})",
        [f"k{i}" for i in range(len(by_domain_keys))],
        lambda _plain, *keys: _route_domain(*keys),
        pa.schema(
            [
                ("territory", _S),
                ("owner", _S),
                ("rule", _S),
                ("owners", pa.list_(_S)),
                ("dealt", pa.bool_()),
            ]
        ),
    )
    joins += (
        f" LEFT JOIN (SELECT * FROM {by_domain} WHERE dealt) AS rd"
        f" ON {join_on('rd', by_domain_keys)}"
    )
    one_by_one_keys = ["r.email", "r.domain", "r.country_code", "r.state", stand_in["r.employees"]]
    one_by_one = distinct_lookup(
        con,
        f"(SELECT {_aliased(one_by_one_keys)} FROM {leads} AS r {joins} WHERE rd.dealt IS NULL)",
        [f"k{i}" for i in range(len(one_by_one_keys))],
        _route,
        pa.schema([("territory", _S), ("owner", _S), ("rule", _S)]),
    )
    # A lead dealt by domain never has the keys of one routed alone (the same keys give the
    # same route by domain), so this join needs no other condition.
    joins += f" LEFT JOIN {one_by_one} AS ro ON {join_on('ro', one_by_one_keys)}"
    deal = ROUND_ROBIN_SQL.format(email="r.email", owners="len(rd.owners)")
    owner = f"CASE WHEN rd.owners IS NULL THEN rd.owner ELSE rd.owners[1 + {deal}] END"
    return joins, {
        "territory": "coalesce(rd.territory, ro.territory)",
        "owner_id": f"CASE WHEN rd.dealt THEN {owner} ELSE ro.owner END",
        "routing_rule": "coalesce(rd.rule, ro.rule)",
    }


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
    """One company per domain: the newest non-empty firmographics among its leads, newest
    by their records as leads are merged (landed_at, then source_file and line)."""
    newest = ["company", "company_industry", "country", "country_code", "state", "annual_revenue"]
    # By landed_at alone, leads of one file tie and arg_max would pick any of them, as DuckDB
    # happens to split the work.
    order = "{'landed_at': landed_at, 'source_file': source_file, 'line': line}"
    picks = ", ".join(
        f"arg_max({c}, {order}) FILTER (WHERE {c} IS NOT NULL) AS {c}" for c in newest
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
