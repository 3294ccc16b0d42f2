"""Lead routing: territory and owner by named account, geography, segment and a
deterministic round robin, by the rules in ``config/territories.yaml``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gtm_orchestration.lib.config import ConfigError, config_path, load_model
from gtm_orchestration.lib.conversion import CACHE_SIZE
from gtm_orchestration.lib.normalize import (
    CountryCode,
    compact_key,
    domain_from_email,
    domain_from_website,
    normalize_region,
)


@dataclass(frozen=True)
class Route:
    """Where a lead goes: its territory, its owner (a CRM owner id, or None) and the rules
    that decided, e.g. ``territory:NA West;segment:NA Enterprise;owner:round_robin``."""

    territory: str
    owner_id: str | None
    rule: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _NamedAccount(_Strict):
    name: str
    domains: list[str]
    territory: str
    owner: str


class _Segment(_Strict):
    name: str
    min_employees: int
    owners: list[str]


class _Territory(_Strict):
    name: str
    countries: list[CountryCode]
    regions: list[str] = []
    owners: list[str]
    segments: list[_Segment] = []


class _Unassigned(_Strict):
    name: str
    owners: list[str] = []


class _TerritoriesFile(_Strict):
    version: int
    owners: dict[str, str]
    named_accounts: list[_NamedAccount] = []
    territories: list[_Territory]
    unassigned: _Unassigned


@dataclass(frozen=True, eq=False)
class TerritoryRules:
    """Routing rules (``config/territories.yaml``)."""

    named_accounts: dict[str, _NamedAccount]
    territories: tuple[tuple[_Territory, frozenset[str]], ...]
    unassigned: _Unassigned


def _check(path: Path, data: _TerritoriesFile) -> None:
    """Raise ConfigError for unknown owners, bad regions and doubly named domains."""

    def owners_known(where: str, owners: list[str]) -> None:
        for owner in owners:
            if owner not in data.owners:
                raise ConfigError(
                    f"{path}: {where}: expected an owner id listed under owners "
                    f"({', '.join(data.owners)}) (found {owner!r})"
                )

    seen: dict[str, str] = {}
    for i, account in enumerate(data.named_accounts):
        owners_known(f"named_accounts[{i}].owner", [account.owner])
        for domain in account.domains:
            if domain_from_website(domain) != domain:
                raise ConfigError(
                    f"{path}: named_accounts[{i}].domains: expected a registrable domain in "
                    f"lower case such as 'acme.com' (found {domain!r})"
                )
            if seen.setdefault(domain, account.name) != account.name:
                raise ConfigError(
                    f"{path}: named_accounts[{i}].domains: {domain!r} is already the domain "
                    f"of {seen[domain]}; expected each domain under one account"
                )
    for i, territory in enumerate(data.territories):
        owners_known(f"territories[{i}].owners", territory.owners)
        for j, segment in enumerate(territory.segments):
            owners_known(f"territories[{i}].segments[{j}].owners", segment.owners)
        for region in territory.regions:
            if not any(normalize_region(region, c) == region for c in territory.countries):
                raise ConfigError(
                    f"{path}: territories[{i}].regions: expected the full name of a state or "
                    f"province of {', '.join(territory.countries)} (found {region!r})"
                )
    owners_known("unassigned.owners", data.unassigned.owners)


def load_territory_rules(path: Path | None = None) -> TerritoryRules:
    """Load the routing rules; the bundled ``config/territories.yaml`` by default."""
    path = path or config_path("territories.yaml")
    data = load_model(path, _TerritoriesFile)
    _check(path, data)
    return TerritoryRules(
        named_accounts={d: account for account in data.named_accounts for d in account.domains},
        territories=tuple(
            (t, frozenset(compact_key(r) for r in t.regions)) for t in data.territories
        ),
        unassigned=data.unassigned,
    )


@cache
def default_territory_rules() -> TerritoryRules:
    """The bundled routing rules, loaded once per process."""
    return load_territory_rules()


# The deal of round_robin_owner in DuckDB SQL, for a batch: the 0-based index into
# ``{owners}`` owners of the address ``{email}``, already trimmed and in lower case.
ROUND_ROBIN_SQL = "(('0x' || left(sha256({email}), 16))::UBIGINT % {owners})::BIGINT"


def round_robin_owner(email: str, owners: list[str]) -> str | None:
    """The owner of ``owners`` that ``email`` is dealt to: stable across runs and processes
    (sha256 of the trimmed, lower-cased address, its first 8 bytes as a big-endian number
    modulo the number of owners, as ``ROUND_ROBIN_SQL`` deals in a batch), None when there
    are no owners."""
    if not owners:
        return None
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).digest()
    return owners[int.from_bytes(digest[:8], "big") % len(owners)]


def _in_territory(
    territory: _Territory, regions: frozenset[str], country: str, state: str | None
) -> bool:
    if country not in territory.countries:
        return False
    if not regions:
        return True
    region = normalize_region(state, country)
    return region is not None and compact_key(region) in regions


@lru_cache(maxsize=CACHE_SIZE)
def route_lead(
    *,
    email: str,
    domain: str | None,
    country_code: str | None,
    state: str | None,
    employees: int | None,
    rules: TerritoryRules | None = None,
) -> Route:
    """The territory and owner of a lead.

    Named account by ``domain`` (or the domain of a work ``email``) first, then the first
    territory matching ``country_code`` and ``state``, narrowed to a segment by
    ``employees``, with the owner dealt by a stable hash of ``email``. A lead matching
    nothing goes to the unassigned territory. Uses the bundled rules unless ``rules`` is
    given.
    """
    rules = rules or default_territory_rules()
    for candidate in (domain_from_website(domain), domain_from_email(email)):
        account = rules.named_accounts.get(candidate) if candidate else None
        if account is not None:
            return Route(account.territory, account.owner, f"named_account:{candidate}")
    country = (country_code or "").strip().upper()
    for territory, regions in rules.territories:
        if not _in_territory(territory, regions, country, state):
            continue
        fired = [f"territory:{territory.name}"]
        name, owners = territory.name, territory.owners
        for segment in territory.segments:
            if employees is not None and employees >= segment.min_employees:
                name, owners = segment.name, segment.owners
                fired.append(f"segment:{segment.name}")
                break
        owner = round_robin_owner(email, owners)
        if owner is not None:
            fired.append("owner:round_robin")
        return Route(name, owner, ";".join(fired))
    fired = ["unassigned"]
    owner = round_robin_owner(email, rules.unassigned.owners)
    if owner is not None:
        fired.append("owner:round_robin")
    return Route(rules.unassigned.name, owner, ";".join(fired))
