"""The transform stage: canonical raw rows -> normalized, classified, scored, routed leads.

A batch is held as columns of codes: each column of the raw rows is encoded as its distinct
values and each row's index into them (``_Column``), and a rule that needs Python
(dictionaries, title classification, phone parsing) runs once per distinct value, or per
distinct combination of the values it reads, keeping the codes of its inputs. A batch of a
million rows with ten thousand distinct titles classifies ten thousand titles, and a row's
values are only looked up once, when the leads are laid out in the order of their
identities. What SQL decides as the rule does stays in SQL and runs on all threads: plain
e-mail addresses, the merge of the few rows of one person, the round robin's deal of owners.
The rules that read a whole lead (fit score, route) run once per combination of the values
they tell apart, a million leads of five thousand companies taking a few thousand calls.
The same function serves file drops, form webhooks, dry runs and backfills, and is
deterministic: the same rows give the same leads, in the same order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gtm_orchestration.lib.batch import distinct_lookup, in_parallel, join_on
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
from gtm_orchestration.lib.identity import identity_rules
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS, load_registry
from gtm_orchestration.lib.normalize import (
    clean_company_name,
    default_email_providers,
    domain_from_website,
    identity_of_address,
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
from gtm_orchestration.lib.scoring import fit_of, fit_part, score_fit
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


def _email(raw: str | None) -> tuple[str | None, str | None]:
    email = normalize_email(raw)
    return email, identity_of_address(email)


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


@dataclass(frozen=True)
class _Column:
    """A column of a batch as indices into its values: row ``i`` holds
    ``values[codes[i]]``. Values a rule derives from another column's values keep that
    column's codes, so a rule over a million rows of ten thousand distinct values builds ten
    thousand values, and a row's value is only looked up when the leads are laid out."""

    values: pa.Array
    codes: np.ndarray

    def take(self, rows: np.ndarray) -> pa.Array:
        """The values of ``rows``."""
        return self.values.take(pa.array(self.codes[rows]))

    def of_rows(self, rows: np.ndarray) -> _Column:
        """This column for ``rows`` alone, in their order."""
        return _Column(self.values, self.codes[rows])


def _queried(con: duckdb.DuckDBPyConnection, table: pa.Table, query: str) -> pa.Table:
    """The result of ``query`` over ``table``, which it names ``{t}``: a projection keeps
    the table's row order."""
    name = f"batch_{next(_tables)}"
    con.register(name, table)
    try:
        return con.execute(query.replace("{t}", name)).to_arrow_table()
    finally:
        con.unregister(name)


def _encoded(array: pa.Array | pa.ChunkedArray) -> _Column:
    """``array`` as its distinct values (a null last) and each row's index into them."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    encoded = pc.dictionary_encode(array)
    values = encoded.dictionary
    codes = pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False)
    nulls = pa.nulls(1, values.type)
    return _Column(pa.concat_arrays([values, nulls]), codes.astype(np.int64))


def _as_is(array: pa.Array | pa.ChunkedArray) -> _Column:
    """``array`` as a column of its own values, row by row."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return _Column(array, np.arange(len(array), dtype=np.int64))


def _first_rows(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``key`` as each row's index among them, in the order they
    first come, and the first row of each."""
    encoded = pc.dictionary_encode(pa.array(key))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.empty(len(encoded.dictionary), dtype=np.int64)
    # Assigned from the last row to the first: the first row of each value writes last.
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return codes, first


# A combination key grows by a factor of each column's distinct values; it is renumbered
# before it could pass this bound.
_KEY_BOUND = 1 << 62


def _combinations(columns: list[_Column]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's index among the distinct combinations of ``columns``' values and the
    first row of each combination."""
    key = np.zeros(len(columns[0].codes), dtype=np.int64)
    size = 1
    for column in columns:
        if size * len(column.values) >= _KEY_BOUND:
            key, first = _first_rows(key)
            size = len(first)
        key = key * len(column.values) + column.codes
        size *= len(column.values)
    return _first_rows(key)


def _derive(
    columns: list[_Column], rule: Callable[..., Any], fields: list[tuple[str, pa.DataType]]
) -> dict[str, _Column]:
    """The columns ``rule`` gives over ``columns``: called once per distinct combination
    of their values, with one argument per column, it returns one value per field."""
    codes, first = _combinations(columns)
    arguments = [column.take(first).to_pylist() for column in columns]
    results = [rule(*values) for values in zip(*arguments, strict=True)]
    return {
        name: _Column(pa.array([result[j] for result in results], type=kind), codes)
        for j, (name, kind) in enumerate(fields)
    }


def _mapped(column: _Column, rule: Callable[[Any], Any], kind: pa.DataType) -> _Column:
    """``rule`` over each of ``column``'s values, which keeps its codes."""
    return _Column(pa.array([rule(v) for v in column.values.to_pylist()], type=kind), column.codes)


def _recoded(column: _Column) -> _Column:
    """``column`` with one code per distinct value (a rule maps several to one)."""
    values = _encoded(column.values)
    return _Column(values.values, values.codes[column.codes])


def _industry_or_raw(raw: str | None) -> tuple[str | None, str | None, str | None]:
    # The lead keeps an industry off the picklist as it came; the company does not.
    value, flag = _industry(raw)
    return value, flag, raw if value is None else value


def _split_domain(email: str | None) -> str | None:
    # DuckDB's split_part(email, '@', 2): the part after the first '@', empty without one.
    if email is None:
        return None
    parts = email.split("@")
    return parts[1] if len(parts) > 1 else ""


def _blank_trimmed(value: str | None) -> str | None:
    # DuckDB's nullif(trim(value), ''): trim takes spaces only.
    if value is None:
        return None
    return value.strip(" ") or None


def _flag_text(separator: str) -> Callable[..., tuple[str | None]]:
    def flags(*flags: str | None) -> tuple[str | None]:
        return (separator.join(flag for flag in flags if flag) or None,)

    return flags


def transform_leads(
    con: duckdb.DuckDBPyConnection, raw: str | pa.Table
) -> tuple[pa.Table, pa.Table]:
    """Transform the canonical rows of ``raw`` into leads and companies.

    ``raw``, a relation of ``con`` or an Arrow table, has the canonical fields and
    PROVENANCE_COLUMNS (and ``enrichment_flag`` when enriched on the way in). Returns
    ``(leads, companies)``: one lead per normalized email (the newest non-empty value of
    each field wins) and one company per domain, columns LEAD_COLUMNS / COMPANY_COLUMNS,
    leads in the order of the identities of their addresses.
    """
    columns = [*CANONICAL_FIELDS, *PROVENANCE_COLUMNS]
    if isinstance(raw, str):
        present = {c[0] for c in con.execute(f"DESCRIBE {raw}").fetchall()}
        selected = [*columns, *(c for c in _OPTIONAL_FIELDS if c in present)]
        table = con.execute(f"SELECT {', '.join(selected)} FROM {raw}").to_arrow_table()
    else:
        table = raw.select([*columns, *(c for c in _OPTIONAL_FIELDS if c in raw.column_names)])
    rows = _normalized_rows(con, table)
    del table
    leads = _merged_leads(con, rows)
    del rows
    _score_and_route(con, leads)
    leads_table = pa.table({name: leads[name] for name in LEAD_COLUMNS})
    return leads_table, _companies(con, leads_table)


# Raw columns read when there: the flag of an enrichment lookup that failed (enrich_rows).
_OPTIONAL_FIELDS = ("enrichment_flag",)


def _normalized_rows(con: duckdb.DuckDBPyConnection, raw: pa.Table) -> dict[str, _Column]:
    """The columns of each raw row once the rules have read it: the lead columns a merge
    picks from, with ``identity`` and the row's ``flags`` (apart by a control character)."""
    if "enrichment_flag" not in raw.column_names:
        raw = raw.append_column("enrichment_flag", pa.nulls(raw.num_rows, _S))
    names = [name for name in raw.column_names if name not in _NOT_ENCODED]
    column = dict(zip(names, in_parallel(_encoded, [raw[name] for name in names]), strict=True))
    as_is, lower_domain = _plain_addresses(con, raw["email"])
    # The addresses that are not plain take the Python rules, once per distinct address.
    others = np.flatnonzero(~as_is)
    other = _encoded(raw["email"].take(pa.array(others)))
    looked_up = _derive([other], _email, [("v", _S), ("identity", _S)])
    normalized = looked_up["v"].values
    identities = pc.coalesce(looked_up["identity"].values, normalized)
    other_domains = _recoded(_mapped(looked_up["v"], _split_domain, _S))
    mask = pa.array(~as_is)
    codes = looked_up["v"].codes

    def with_others(plain: pa.ChunkedArray, values: pa.Array) -> _Column:
        return _as_is(pc.replace_with_mask(plain.combine_chunks(), mask, values.take(codes)))

    # A plain address is ASCII: in lower case as SQL's lower() has it.
    lower_email = pc.ascii_lower(raw["email"])
    email = with_others(lower_email, normalized)
    identity = with_others(lower_email, identities)
    domain_codes = lower_domain.codes.copy()
    domain_codes[others] = len(lower_domain.values) + other_domains.codes
    email_domain = _Column(
        pa.concat_arrays([lower_domain.values, other_domains.values]), domain_codes
    )
    # Whether each row's normalized address is plain, as routing asks: a row's as it is,
    # and the others' once per distinct normalized address.
    plain = np.ones(len(as_is), dtype=bool)
    plain[others] = _plain(con, normalized)[codes]

    website = _derive([column["website"]], _website_domain, [("v", _S)])["v"]
    # The domain of the website, else of the address when it is not free mail.
    from_address = _mapped(email_domain, lambda d: _email_domain(d)[0], _S)
    domain = _derive(
        [_recoded(website), _recoded(from_address)],
        lambda site, address: (site if site is not None else address,),
        [("v", _S)],
    )["v"]
    country = _derive([column["country"]], _country, [("name", _S), ("code", _S), ("flag", _S)])
    code = _recoded(country["code"])
    state = _derive([column["state"], code], _region, [("v", _S)])["v"]
    # A number with its own international prefix reads the same in every country: such
    # numbers are looked up once, not once per country they come with.
    phones = column["phone"]
    prefixed = np.array(
        [bool(p and p.startswith("+")) for p in phones.values.to_pylist()], dtype=bool
    )
    no_country = len(code.values) - 1  # the null code of _encoded
    phone_code = _Column(code.values, np.where(prefixed[phones.codes], no_country, code.codes))
    phone = _derive([phones, phone_code], _phone, [("v", _S), ("flag", _S)])
    industry = _derive(
        [column["industry"]], _industry_or_raw, [("v", _S), ("flag", _S), ("or_raw", _S)]
    )
    revenue = _derive([column["annual_revenue"]], _money, [("v", pa.float64()), ("flag", _S)])
    employees = _derive(
        [column["employees"]], _headcount, [("v", pa.int64()), ("band", _S), ("flag", _S)]
    )
    submitted = _derive(
        [column["submitted_at"], column["source"], column["mapping_version"]],
        _submitted_at,
        [("v", pa.date32()), ("flag", _S)],
    )
    opt_in = _derive([column["marketing_opt_in"]], _opt_in, [("v", pa.bool_()), ("flag", _S)])
    title = _derive(
        [column["title"]],
        _title,
        [("function", _S), ("seniority", _S), ("persona", _S), ("rule", _S)],
    )
    # One row's flags, apart by a control character until the merge joins them.
    flag_sources = [
        country["flag"],
        industry["flag"],
        revenue["flag"],
        employees["flag"],
        phone["flag"],
        submitted["flag"],
        opt_in["flag"],
        column["enrichment_flag"],
    ]
    flags = _derive([_recoded(f) for f in flag_sources], _flag_text(chr(31)), [("v", _S)])["v"]
    return {
        "email": email,
        "identity": identity,
        "plain": _as_is(pa.array(plain)),
        "email_domain": email_domain,
        "first_name": _derive([column["first_name"]], _name, [("v", _S)])["v"],
        "last_name": _derive([column["last_name"]], _name, [("v", _S)])["v"],
        "title": _mapped(column["title"], _blank_trimmed, _S),
        "company": _derive([column["company"]], _company, [("v", _S)])["v"],
        "website": column["website"],
        "phone": phone["v"],
        "country": country["name"],
        "country_code": country["code"],
        "state": state,
        "city": _mapped(column["city"], _blank_trimmed, _S),
        "industry": industry["or_raw"],
        "company_industry": industry["v"],
        "annual_revenue": revenue["v"],
        "employees": employees["v"],
        "employees_band": employees["band"],
        "submitted_at": submitted["v"],
        "marketing_opt_in": opt_in["v"],
        "domain": domain,
        "function": title["function"],
        "seniority": title["seniority"],
        "persona": title["persona"],
        "persona_rule": title["rule"],
        "flags": flags,
        "source": column["source"],
        "source_file": column["source_file"],
        "line": _as_is(raw["line"]),
        "landed_at": column["landed_at"],
        "mapping_version": column["mapping_version"],
    }


# Raw columns read as they are or by the e-mail rules, not encoded value by value.
_NOT_ENCODED = frozenset(("email", "line"))


def _plain(con: duckdb.DuckDBPyConnection, emails: pa.Array) -> np.ndarray:
    """Whether each of ``emails`` is plain (``plain_email_sql``)."""
    query = f"SELECT {plain_email_sql('email')} AS plain FROM {{t}}"
    return _queried(con, pa.table({"email": emails}), query)["plain"].to_numpy()


def _plain_addresses(
    con: duckdb.DuckDBPyConnection, emails: pa.ChunkedArray
) -> tuple[np.ndarray, _Column]:
    """Which of ``emails`` are, in lower case, both their normalized form and their identity
    (``as_is_email_sql``), and the domain of each in lower case. The test of the domain's
    mailbox rules runs once per distinct domain."""
    tested = _queried(
        con,
        pa.table({"email": emails}),
        f"SELECT {plain_email_sql('email')} AS plain, "
        "split_part(lower(email), '@', 2) AS domain FROM {t}",
    )
    domain = _encoded(tested["domain"])
    ruled = _queried(
        con,
        pa.table({"domain": domain.values}),
        f"SELECT {default_email_providers().rule_may_apply_sql('domain')} AS ruled FROM {{t}}",
    )
    may_apply = ruled["ruled"].to_numpy()[domain.codes]
    return tested["plain"].to_numpy() & ~may_apply, domain


def _merged_leads(con: duckdb.DuckDBPyConnection, rows: dict[str, _Column]) -> dict[str, pa.Array]:
    """One lead per identity, in the order of the identities: a row whose identity no other
    row has is its lead as it is; the rows of a repeated identity are merged (see
    ``_merge_query``). Returns the lead columns the merge decides, by name."""
    order, ordered = _sorted(con, rows["identity"].values)
    # A row starts a lead unless it has the identity of the row before it (nulls are one).
    same = pc.or_(
        pc.fill_null(pc.equal(ordered[1:], ordered[:-1]), False),
        pc.and_(pc.is_null(ordered[1:]), pc.is_null(ordered[:-1])),
    )
    starts = np.flatnonzero(np.concatenate([[True], ~same.to_numpy(zero_copy_only=False)]))
    starts = starts[starts < len(order)]
    sizes = np.diff(np.append(starts, len(order)))
    single = sizes == 1
    merged = _merge(con, rows, order[np.repeat(~single, sizes)])
    # Each lead of merged rows: its row in ``merged`` (the merge keeps no order).
    merged_at = np.zeros(len(starts), dtype=np.int64)
    merged_at[~single] = pc.index_in(
        ordered.take(pa.array(starts[~single])), value_set=merged["identity"], skip_nulls=False
    ).to_numpy(zero_copy_only=False)
    first_rows = order[starts]
    flags = rows["flags"]
    columns = rows | {
        # A row merged with no other has its flags apart by '; ' as a merged lead has.
        "flags": _mapped(flags, lambda f: None if f is None else f.replace(chr(31), "; "), _S)
    }

    def lead_column(name: str) -> pa.Array:
        column = columns[name]
        values = pa.concat_arrays(
            [column.values, merged[name].combine_chunks().cast(column.values.type)]
        )
        codes = np.where(single, column.codes[first_rows], len(column.values) + merged_at)
        return values.take(pa.array(codes))

    names = ["email", *_WITH_EMAIL, *_MERGED_COLUMNS, "flags"]
    leads = dict(zip(names, in_parallel(lead_column, names), strict=True))
    counts = merged["records_merged"].to_numpy()
    leads["records_merged"] = pa.array(np.where(single, 1, counts[merged_at] if len(counts) else 1))
    return leads


def _sorted(con: duckdb.DuckDBPyConnection, values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """The order of ``values`` (nulls last, ties in their order) and the values in it:
    sorted by DuckDB on all threads, in the order its ORDER BY gives."""
    result = _queried(
        con,
        pa.table({"i": np.arange(len(values)), "v": values}),
        "SELECT i, v FROM {t} ORDER BY v NULLS LAST, i",
    )
    return result["i"].to_numpy(), result["v"].combine_chunks()


# What a lead keeps of the row its address comes from (the first seen).
_WITH_EMAIL = ("plain", "email_domain")
# The lead columns a merge picks the newest non-empty value of.
_MERGED_COLUMNS = tuple(c for c in LEAD_COLUMNS if c not in _DERIVED_AFTER_MERGE)


def _merge(
    con: duckdb.DuckDBPyConnection, rows: dict[str, _Column], merged: np.ndarray
) -> pa.Table:
    """The leads of the ``merged`` rows, one per identity, in no order."""
    table = pa.table(
        {
            "newest_at": rows["landed_at"].take(merged),
            "newest_file": rows["source_file"].take(merged),
            "newest_line": rows["line"].take(merged),
            "newest_source": rows["source"].take(merged),
        }
        | {
            name: rows[name].take(merged)
            for name in ("email", "identity", *_WITH_EMAIL, *_MERGED_COLUMNS, "flags")
        }
    )
    return _queried(con, table, _merge_query("{t}", list(_MERGED_COLUMNS)))


def _merge_query(relation: str, columns: list[str]) -> str:
    """The query merging the rows of ``relation`` by identity: for each of ``columns``, the
    non-empty value of the source that ranks first for the field (``config/identity.yaml``),
    the newest (by ``newest_at``, ``newest_file``, ``newest_line``) among equals, the
    distinct ``flags`` of all its rows and how many rows it has (``records_merged``).
    Records are one person when their address has the same ``identity``; the merged lead
    keeps the address the person was first seen with."""
    rules = identity_rules()

    def pick(column: str) -> str:
        rank = rules.rank_sql(column, "newest_source")
        # Rank, then seq, as one number (seq counts rows: far below 2^40).
        order = "seq" if rank == "0" else f"({rank}) * {1 << 40} + seq"
        return f"arg_max({column}, {order}) FILTER (WHERE {column} IS NOT NULL) AS {column}"

    with_email = ", ".join(
        f"arg_min({c}, seq) FILTER (WHERE email IS NOT NULL) AS {c}" for c in _WITH_EMAIL
    )
    # A flag that several of the rows carry (the same company's failed lookup) once.
    every_flag = "list_filter(flatten(list(string_split(flags, chr(31)))), lambda f: f <> '')"
    return f"""
        SELECT identity, arg_min(email, seq) AS email, {with_email},
               {", ".join(pick(c) for c in columns)},
               nullif(array_to_string(list_sort(list_distinct({every_flag})), '; '), '')
                   AS flags,
               count(*) AS records_merged
        FROM (
            SELECT *, row_number() OVER (ORDER BY newest_at, newest_file, newest_line) AS seq
            FROM {relation}
        )
        GROUP BY identity
    """


def _represented(column: _Column, signature: Callable[[Any], object]) -> _Column:
    """``column`` with each value represented by the first value (None, then the
    smallest) of the same ``signature``: a rule that reads a value only for its signature
    then runs on fewer distinct values."""
    values = column.values.to_pylist()
    first: dict[object, int] = {}
    stand_in = np.empty(len(values), dtype=np.int64)
    for i in sorted(range(len(values)), key=lambda i: (values[i] is not None, values[i])):
        stand_in[i] = first.setdefault(signature(values[i]), i)
    return _Column(column.values, stand_in[column.codes])


def _materialized(column: _Column) -> pa.Array:
    return column.values.take(pa.array(column.codes))


def _score_and_route(con: duckdb.DuckDBPyConnection, leads: dict[str, pa.Array]) -> None:
    """Add the fit score and the route of each of ``leads``, and its lifecycle stage:
    score_fit and route_lead run once per distinct combination of the values they tell
    apart."""
    # The score adds up the points of each attribute: the parts are looked up once per
    # distinct value, and added up once per distinct combination of parts.
    parts: list[list[tuple[int, str]]] = []
    part_codes = []
    for keyword, column in _FIT_INPUTS.items():
        values = _encoded(leads[column])
        ids: dict[tuple[int, str], int] = {}
        part_ids = np.array(
            [ids.setdefault(fit_part(keyword, v), len(ids)) for v in values.values.to_pylist()],
            dtype=np.int64,
        )
        parts.append(list(ids))
        part_codes.append(_Column(pa.array(np.arange(len(ids))), part_ids[values.codes]))

    def fit_of_parts(*ids: int) -> tuple[int, str]:
        score = fit_of([attribute[i] for attribute, i in zip(parts, ids, strict=True)])
        return score.value, "; ".join(score.reasons)

    fit = _derive(part_codes, fit_of_parts, [("score", pa.int64()), ("reasons", _S)])
    leads["fit_score"] = _materialized(fit["score"])
    leads["fit_reasons"] = _materialized(fit["reasons"])
    leads |= _routes(con, leads)
    leads["lifecycle_stage"] = pa.repeat(pa.scalar("lead"), len(leads["email"]))


def _routes(con: duckdb.DuckDBPyConnection, leads: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """The ``territory``, ``owner_id`` and ``routing_rule`` of each of ``leads``.

    route_lead runs once per distinct e-mail domain and firmographics that route
    differently, the round robin deals the owners in SQL (see ``_route_domain``); addresses
    that are not plain, or whose owners the rules do not tell, are routed one by one.
    """
    plain = leads["plain"].to_numpy(zero_copy_only=False)
    employees = _represented(_encoded(leads["employees"]), _segments_reached)
    domain = _encoded(leads["domain"])
    country_code = _encoded(leads["country_code"])
    state = _encoded(leads["state"])
    by_domain_rows = np.flatnonzero(plain)
    by_domain = _derive(
        [
            column.of_rows(by_domain_rows)
            for column in (
                _represented(_encoded(leads["email_domain"]), _routed_by_email_domain),
                _represented(domain, _routed_by_domain),
                country_code,
                state,
                employees,
            )
        ],
        _route_domain,
        [
            ("territory", _S),
            ("owner", _S),
            ("rule", _S),
            ("owners", pa.list_(_S)),
            ("dealt", pa.bool_()),
        ],
    )
    combination = by_domain["dealt"].codes
    dealt = by_domain["dealt"].values.to_numpy(zero_copy_only=False)[combination]
    dealt_rows = by_domain_rows[dealt]
    combination = combination[dealt]
    alone_rows = np.setdiff1d(np.arange(len(plain)), dealt_rows, assume_unique=True)
    alone = _derive(
        [
            column.of_rows(alone_rows)
            for column in (_as_is(leads["email"]), domain, country_code, state, employees)
        ],
        _route,
        [("territory", _S), ("owner", _S), ("rule", _S)],
    )
    # Each route: its value by domain for a lead dealt so, else its value routed alone.
    routes = {}
    for out, field in (("territory", "territory"), ("routing_rule", "rule")):
        by, by_alone = by_domain[field].values, alone[field].values
        codes = np.empty(len(plain), dtype=np.int64)
        codes[dealt_rows] = combination
        codes[alone_rows] = len(by) + alone[field].codes
        routes[out] = pa.concat_arrays([by, by_alone]).take(pa.array(codes))
    # An owner dealt by the round robin is one of its combination's owners.
    pools = by_domain["owners"].values
    pooled = pc.fill_null(pc.list_value_length(pools), 0).to_numpy(zero_copy_only=False)
    offsets = pools.offsets.to_numpy()[:-1] - pools.offsets[0].as_py()
    owners = by_domain["owner"].values
    codes = np.empty(len(plain), dtype=np.int64)
    codes[dealt_rows] = combination
    codes[alone_rows] = len(owners) + len(pools.flatten()) + alone["owner"].codes
    pooled_rows = pooled[combination] > 0
    codes[dealt_rows[pooled_rows]] = (
        len(owners)
        + offsets[combination[pooled_rows]]
        + _round_robin_deals(
            con,
            leads["email"].take(pa.array(dealt_rows[pooled_rows])),
            pooled[combination[pooled_rows]],
        )
    )
    routes["owner_id"] = pa.concat_arrays([owners, pools.flatten(), alone["owner"].values]).take(
        pa.array(codes)
    )
    return routes


def _round_robin_deals(
    con: duckdb.DuckDBPyConnection, emails: pa.Array, owners: np.ndarray
) -> np.ndarray:
    """The 0-based index of the owner each of ``emails`` is dealt, among as many ``owners``
    as its entry gives, by ``ROUND_ROBIN_SQL``."""
    deals = _queried(
        con,
        pa.table({"email": emails, "owners": owners.astype(np.uint64)}),
        f"SELECT {ROUND_ROBIN_SQL.format(email='email', owners='owners')} AS deal FROM {{t}}",
    )
    return deals["deal"].to_numpy().astype(np.int64)


# The lead columns score_fit reads, by its keyword.
_FIT_INPUTS = {
    "industry": "company_industry",
    "employees": "employees",
    "country_code": "country_code",
    "seniority": "seniority",
    "function": "function",
}


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


def _newest_rank(leads: pa.Table) -> pa.Array | None:
    """Each lead's place in the order of (landed_at, source_file, line) as one number, which
    arg_max compares faster than the three; None when one of them is missing somewhere or
    a line is out of range."""
    line = leads["line"]
    if any(leads[c].null_count for c in ("landed_at", "source_file", "line")) or (
        len(line) and (pc.min(line).as_py() < 0 or pc.max(line).as_py() >= 1 << 32)
    ):
        return None
    stamps, files = _encoded(leads["landed_at"]), _encoded(leads["source_file"])
    codes, first = _combinations([stamps, files])
    keys = zip(stamps.take(first).to_pylist(), files.take(first).to_pylist(), strict=True)
    ranks = np.empty(len(first), dtype=np.int64)
    ranks[sorted(range(len(first)), key=list(keys).__getitem__)] = np.arange(len(first))
    return pa.array((ranks[codes] << 32) + line.to_numpy().astype(np.int64))


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


def _companies(con: duckdb.DuckDBPyConnection, leads: pa.Table) -> pa.Table:
    """One company per domain: the newest non-empty firmographics among its leads, newest
    by their records as leads are merged (landed_at, then source_file and line)."""
    newest = ["company", "company_industry", "country", "country_code", "state", "annual_revenue"]
    # By landed_at alone, leads of one file tie and arg_max would pick any of them, as DuckDB
    # happens to split the work.
    rank = _newest_rank(leads)
    table = leads.select(["domain", *newest, "employees"])
    if rank is None:
        order = "{'landed_at': landed_at, 'source_file': source_file, 'line': line}"
        table = table.append_column("landed_at", leads["landed_at"])
        table = table.append_column("source_file", leads["source_file"])
        table = table.append_column("line", leads["line"])
    else:
        order = "newest"
        table = table.append_column("newest", rank)
    picks = ", ".join(
        f"arg_max({c}, {order}) FILTER (WHERE {c} IS NOT NULL) AS {c}" for c in newest
    )
    name = f"company_leads_{next(_tables)}"
    con.register(name, table)
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE t_companies AS
            SELECT domain, {picks}, max(employees) AS employees, count(*) AS leads
            FROM {name} WHERE domain IS NOT NULL GROUP BY domain
            """
        )
    finally:
        con.unregister(name)
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
