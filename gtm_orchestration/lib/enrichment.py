"""Enrichment of raw lead rows with firmographics, through a cache in the warehouse.

Rows are grouped by their company's domain (the website's, else a non-free-mail
e-mail's, as the transform derives it). A domain none of whose rows gives one of industry,
employees, annual revenue or country is looked up, once per batch, and only when
``gtm.enrichment_cache`` holds no answer younger than the TTL (one for found companies,
a shorter one for unknown domains, which vendors often learn later). The fields no row of
the company gives are filled with the vendor's values, as raw strings, so they go through
the same normalization as any input. A value a lead gave always wins: over the vendor's on
its own row, and, since the transform keeps the newest non-empty value of each lead and
company, on the company's other rows too.

A lookup that fails after its retries never blocks the batch: its rows carry an
``enrichment_flag`` saying why, or the last answer the cache holds when there is one. Once
the API has failed for MAX_CONSECUTIVE_FAILURES domains in a row, the rest of the batch is
not asked at all, so an outage costs a batch seconds, not a retry cycle per domain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa

from gtm_orchestration.lib.batch import distinct_lookup, join_on
from gtm_orchestration.lib.connectors.enrichment import (
    EnrichmentClient,
    EnrichmentError,
    Firmographics,
)
from gtm_orchestration.lib.normalize import (
    domain_from_website,
    is_free_email_domain,
    normalize_email,
)

# A company none of whose rows gives one of these is looked up.
FIRMOGRAPHIC_FIELDS = ("industry", "employees", "annual_revenue", "country")
# Raw field -> the Firmographics attribute that fills it when empty.
FILLED_FIELDS = {
    "company": "name",
    "industry": "industry",
    "employees": "employees",
    "annual_revenue": "annual_revenue",
    "country": "country",
}
MAX_CONSECUTIVE_FAILURES = 3
# Statuses that refuse one domain rather than say the API is unusable.
_DOMAIN_REFUSED = (400, 422)
_S = pa.string()

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass(frozen=True)
class EnrichmentTtl:
    """How long a cached answer is used before the API is asked again."""

    found: timedelta = timedelta(days=30)
    unknown: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class CacheEntry:
    """One domain's row of ``gtm.enrichment_cache``."""

    domain: str
    found: bool | None  # None: the API never answered for this domain
    firmographics: Firmographics | None
    fresh: bool  # answered within the TTL


@dataclass
class Lookups:
    """What a batch of domains resolved to, and how."""

    answers: dict[str, Firmographics | None] = field(default_factory=dict)  # None: unknown
    flags: dict[str, str] = field(default_factory=dict)  # domains with nothing to use: flag
    errors: dict[str, str] = field(default_factory=dict)  # domains whose lookup failed: why
    fetched: set[str] = field(default_factory=set)  # domains the API answered this time
    changed: set[str] = field(default_factory=set)  # answers that differ from the cached one
    from_cache: int = 0
    looked_up: int = 0
    found: int = 0
    unknown: int = 0
    failed: int = 0


@dataclass(frozen=True)
class EnrichedRows:
    """The enriched relation and the counts shown in run metadata."""

    relation: str
    domains: int = 0  # company domains with firmographics to fill
    from_cache: int = 0
    looked_up: int = 0
    found: int = 0
    unknown: int = 0
    failed: int = 0
    flagged_rows: int = 0


def company_domain(website: str | None, email: str | None) -> tuple[str | None]:
    """The domain a row's company is looked up by: the website's, else the e-mail's unless
    it is a free-mail one; the transform keys companies the same way."""
    domain = domain_from_website(website)
    if domain:
        return (domain,)
    address = normalize_email(email)
    host = address.rpartition("@")[2] if address and "@" in address else ""
    return (host if host and not is_free_email_domain(host) else None,)


def enrich_rows(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    client: EnrichmentClient,
    now: datetime,
    ttl: EnrichmentTtl,
) -> EnrichedRows:
    """Fill the firmographics the raw rows in ``relation`` leave empty from the enrichment API.

    Returns the name of a temporary table with ``relation``'s columns, where company,
    industry, employees, annual_revenue and country that no row of the same company gives
    are filled when the company is known, plus an ``enrichment_flag`` column (NULL, or why
    the lookup of the row's company failed); and the counts.
    """
    domains_of = distinct_lookup(
        con, relation, ["website", "email"], company_domain, pa.schema([("domain", _S)])
    )
    # Per company domain, whether any of its rows gives each field.
    given = f"{relation}_given_fields"
    any_row_gives = ", ".join(
        f"bool_or(nullif(trim(r.{raw}), '') IS NOT NULL) AS {raw}" for raw in FILLED_FIELDS
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {given} AS
        SELECT d.domain, {any_row_gives}
        FROM {relation} AS r JOIN {domains_of} AS d ON {join_on("d", ["r.website", "r.email"])}
        WHERE d.domain IS NOT NULL GROUP BY d.domain
        """
    )
    domains = [
        row[0]
        for row in con.execute(
            f"SELECT domain FROM {given} WHERE NOT ({' AND '.join(FIRMOGRAPHIC_FIELDS)}) "
            "ORDER BY domain"
        ).fetchall()
    ]
    cached = read_cache(con, domains, now, ttl)
    lookups = look_up(client, domains, cached)
    store_lookups(con, lookups, now)

    answers = f"{relation}_enrichment_answers"
    con.register(answers, _answers_table(lookups))
    # g.<field> is true when a row of the company gives the field: then no row is filled.
    # Rows without a company domain have no g and no a, and stay as they are.
    filled = ", ".join(
        f"CASE WHEN g.{raw} THEN r.{raw} ELSE coalesce(a.{raw}, r.{raw}) END AS {raw}"
        for raw in FILLED_FIELDS
    )
    out = f"{relation}_enriched"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT r.* REPLACE ({filled}), a.flag AS enrichment_flag
        FROM {relation} AS r
        LEFT JOIN {domains_of} AS d ON {join_on("d", ["r.website", "r.email"])}
        LEFT JOIN {given} AS g ON g.domain = d.domain
        LEFT JOIN {answers} AS a ON a.domain = d.domain
        """
    )
    con.unregister(answers)
    con.unregister(domains_of)
    con.execute(f"DROP TABLE {given}")
    ((flagged,),) = con.execute(
        f"SELECT count(*) FROM {out} WHERE enrichment_flag IS NOT NULL"
    ).fetchall()
    return EnrichedRows(
        relation=out,
        domains=len(domains),
        from_cache=lookups.from_cache,
        looked_up=lookups.looked_up,
        found=lookups.found,
        unknown=lookups.unknown,
        failed=lookups.failed,
        flagged_rows=flagged,
    )


def read_cache(
    con: duckdb.DuckDBPyConnection, domains: Iterable[str], now: datetime, ttl: EnrichmentTtl
) -> dict[str, CacheEntry]:
    """The cache rows of ``domains`` that exist, each marked fresh or not at ``now``."""
    con.register("enrichment_wanted", pa.table({"domain": pa.array(list(domains), _S)}))
    rows = con.execute(
        """
        SELECT c.domain, c.found, c.firmographics,
               coalesce(CASE WHEN c.found THEN c.fetched_at >= ? ELSE c.fetched_at >= ? END,
                        false) AS fresh
        FROM gtm.enrichment_cache AS c JOIN enrichment_wanted AS w USING (domain)
        """,
        [now - ttl.found, now - ttl.unknown],
    ).fetchall()
    con.unregister("enrichment_wanted")
    return {
        domain: CacheEntry(
            domain=domain,
            found=found,
            firmographics=Firmographics(**json.loads(firmographics)) if firmographics else None,
            fresh=fresh,
        )
        for domain, found, firmographics, fresh in rows
    }


def look_up(
    client: EnrichmentClient, domains: Iterable[str], cached: dict[str, CacheEntry]
) -> Lookups:
    """Resolve ``domains``: fresh cache entries as they are, the others through the API.

    A failed lookup falls back to the domain's last cached answer, else is flagged. Once
    MAX_CONSECUTIVE_FAILURES lookups in a row failed, the remaining ones are not tried.
    """
    lookups = Lookups()
    failures_in_a_row = 0
    last_problem = ""
    for domain in domains:
        entry = cached.get(domain)
        if entry is not None and entry.fresh:
            lookups.from_cache += 1
            lookups.answers[domain] = entry.firmographics
            continue
        if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            reason = (
                f"not tried, the API failed for the {failures_in_a_row} domains before "
                f"({last_problem})"
            )
            _record_failure(lookups, domain, entry, reason)
            continue
        lookups.looked_up += 1
        try:
            answer = client.company(domain)
        except EnrichmentError as error:
            tries = "try" if error.attempts == 1 else "tries"
            reason = f"API failed after {error.attempts} {tries} ({error.problem})"
            _record_failure(lookups, domain, entry, reason)
            failures_in_a_row = 0 if error.status in _DOMAIN_REFUSED else failures_in_a_row + 1
            last_problem = error.problem
            continue
        failures_in_a_row = 0
        if answer is None:
            lookups.unknown += 1
        else:
            lookups.found += 1
        lookups.answers[domain] = answer
        lookups.fetched.add(domain)
        if entry is None or entry.found is None or _filled(entry.firmographics) != _filled(answer):
            lookups.changed.add(domain)
    return lookups


def _record_failure(lookups: Lookups, domain: str, entry: CacheEntry | None, reason: str) -> None:
    lookups.failed += 1
    lookups.errors[domain] = reason
    if entry is not None and entry.found is not None:
        # An old answer beats none: the lead keeps the firmographics it had.
        lookups.answers[domain] = entry.firmographics
    else:
        lookups.flags[domain] = f"enrichment: {reason}"


def _filled(firmographics: Firmographics | None) -> tuple[object, ...] | None:
    """The values that can reach a lead: what decides whether an answer changed."""
    if firmographics is None:
        return None
    return tuple(getattr(firmographics, attribute) for attribute in FILLED_FIELDS.values())


def store_lookups(con: duckdb.DuckDBPyConnection, lookups: Lookups, now: datetime) -> None:
    """Write the API's answers (and the reasons of failed lookups) into the cache."""
    answered = [
        (domain, answer is not None, json.dumps(answer.as_dict()) if answer else None, now)
        for domain, answer in lookups.answers.items()
        if domain in lookups.fetched
    ]
    if answered:
        con.executemany(
            """
            INSERT INTO gtm.enrichment_cache (domain, found, firmographics, fetched_at, error)
            VALUES (?, ?, ?, ?, NULL)
            ON CONFLICT (domain) DO UPDATE SET found = excluded.found,
                firmographics = excluded.firmographics, fetched_at = excluded.fetched_at,
                error = NULL
            """,
            answered,
        )
    if lookups.errors:
        # The last answer, if any, stays: it is still the best the cache knows.
        con.executemany(
            "INSERT INTO gtm.enrichment_cache (domain, error) VALUES (?, ?) "
            "ON CONFLICT (domain) DO UPDATE SET error = excluded.error",
            sorted(lookups.errors.items()),
        )


def _raw_text(value: object) -> str | None:
    """A vendor value as a raw field's string: ``45000000.0`` -> ``"45000000"``."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _answers_table(lookups: Lookups) -> pa.Table:
    domains = sorted(set(lookups.answers) | set(lookups.flags))
    columns: dict[str, pa.Array] = {"domain": pa.array(domains, _S)}
    for raw, attribute in FILLED_FIELDS.items():
        values = []
        for domain in domains:
            answer = lookups.answers.get(domain)
            values.append(_raw_text(getattr(answer, attribute)) if answer else None)
        columns[raw] = pa.array(values, _S)
    columns["flag"] = pa.array([lookups.flags.get(domain) for domain in domains], _S)
    return pa.table(columns)


@dataclass
class RefreshSummary:
    """What a refresh of stale cache entries did, and the landing days it affects."""

    stale: int = 0
    looked_up: int = 0
    found: int = 0
    unknown: int = 0
    failed: int = 0
    changed: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)  # whose companies use a changed answer


def refresh_stale_entries(
    connect: Connect, client: EnrichmentClient, now: datetime, ttl: EnrichmentTtl
) -> RefreshSummary:
    """Re-fetch the cache entries older than the TTL for domains of existing companies.

    The warehouse is not held while the API is asked. Returns the counts, the domains
    whose answer changed and the landing days whose companies have those domains.
    """
    with connect() as con:
        if not _table_exists(con, "gtm", "companies"):
            return RefreshSummary()
        domains = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT c.domain FROM gtm.enrichment_cache AS c "
                "JOIN gtm.companies AS co USING (domain) ORDER BY c.domain"
            ).fetchall()
        ]
        cached = read_cache(con, domains, now, ttl)
    stale = {domain: entry for domain, entry in cached.items() if not entry.fresh}
    lookups = look_up(client, sorted(stale), stale)
    changed = sorted(lookups.changed)
    with connect() as con:
        store_lookups(con, lookups, now)
        con.register("enrichment_changed", pa.table({"domain": pa.array(changed, _S)}))
        days = [
            str(row[0])
            for row in con.execute(
                "SELECT DISTINCT partition_date FROM gtm.companies "
                "JOIN enrichment_changed USING (domain) ORDER BY partition_date"
            ).fetchall()
        ]
        con.unregister("enrichment_changed")
    return RefreshSummary(
        stale=len(stale),
        looked_up=lookups.looked_up,
        found=lookups.found,
        unknown=lookups.unknown,
        failed=lookups.failed,
        changed=changed,
        days=days,
    )


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    ((found,),) = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return found > 0
