"""Sequence enrollment rules: which lead goes into which sequence, and whether its
personalization fields are fit to be sent (``config/sequences.yaml``).

Pure functions of a lead (a mapping of ``gtm.leads`` columns) and the rules; nothing here
talks to the sequencer or the warehouse (``lib/enrollment.py`` does).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gtm_orchestration.lib.config import ConfigError, config_path, load_model
from gtm_orchestration.lib.normalize import CountryCode, compact_key
from gtm_orchestration.lib.personas import Function, Seniority, default_persona_rules
from gtm_orchestration.lib.routing import default_territory_rules

# Lead fields a sequence may personalize with, and the prospect attribute each is sent as.
PROSPECT_ATTRIBUTES: dict[str, str] = {
    "first_name": "firstName",
    "last_name": "lastName",
    "title": "title",
    "company": "company",
    "city": "addressCity",
    "state": "addressState",
    "country": "addressCountry",
    "industry": "companyIndustry",
    "website": "websiteUrl1",
}
# Outreach's sequence-state values.
SEQUENCE_STATES = (
    "active",
    "pending",
    "paused",
    "finished",
    "failed",
    "disabled",
    "bounced",
    "opted_out",
)
# A prospect in one of these anywhere is never enrolled again, whatever the file says.
ALWAYS_BLOCKING = ("active", "pending", "paused")
PERSON_NAME_FIELDS = frozenset({"first_name", "last_name"})

PersonalizationField = Literal[
    "first_name", "last_name", "title", "company", "city", "state", "country", "industry", "website"
]
SequenceState = Literal[
    "active", "pending", "paused", "finished", "failed", "disabled", "bounced", "opted_out"
]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
# Merge tags a template tool left unfilled: {{first_name}}, {company}, ${title}, %FIRSTNAME%,
# [[Company]], <<Name>>, [First Name].
_TEMPLATE_LEFTOVER = re.compile(
    r"\{\{.*?\}\}|\$\{.*?\}|\{\s*[A-Za-z_][\w .-]*\}|%[A-Za-z_][A-Za-z0-9_]*%|\[\[.*?\]\]|<<.*?>>"
    r"|\[\s*(?:first|last|full|company|account|job|title|name)[\w ]*\]",
    re.IGNORECASE,
)


def _mailbox(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("expected a mailbox e-mail address such as rep@example.com")
    return value.lower()


def _sequence_key(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ValueError("expected a key of lower-case letters, digits and underscores")
    return value


Mailbox = Annotated[str, AfterValidator(_mailbox)]
SequenceKey = Annotated[str, AfterValidator(_sequence_key)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Sequence(_Strict):
    name: str = Field(min_length=1)
    personalization: list[PersonalizationField] = Field(min_length=1)


class _Rule(_Strict):
    sequence: SequenceKey
    personas: list[str] | None = None
    functions: list[Function] | None = None
    seniorities: list[Seniority] | None = None
    territories: list[str] | None = None
    country_codes: list[CountryCode] | None = None
    min_fit_score: int | None = Field(default=None, ge=0, le=100)


class _SequencesFile(_Strict):
    version: int
    quality_window_minutes: float = Field(ge=0)
    claim_lease_minutes: float = Field(gt=0)
    max_attempts: int = Field(ge=1)
    blocking_states: list[SequenceState]
    placeholder_values: list[str] = []
    default_mailbox: Mailbox
    owner_mailboxes: dict[str, Mailbox] = {}
    sequences: dict[SequenceKey, _Sequence] = Field(min_length=1)
    rules: list[_Rule]


@dataclass(frozen=True)
class SequenceSpec:
    """One sequence: its key in idempotency keys, its name in the sequencer, and the lead
    fields its templates use."""

    key: str
    name: str
    personalization: tuple[str, ...]


@dataclass(frozen=True)
class SequenceRules:
    """The enrollment rules (``config/sequences.yaml``), validated."""

    quality_window_minutes: float
    claim_lease_minutes: float
    max_attempts: int
    blocking_states: frozenset[str]
    placeholders: frozenset[str]  # compact keys of the placeholder values
    default_mailbox: str
    owner_mailboxes: Mapping[str, str]
    sequences: Mapping[str, SequenceSpec]
    rules: tuple[_Rule, ...]

    def with_quality_window(self, minutes: float | None) -> SequenceRules:
        """The same rules with another quality window (None keeps the file's)."""
        if minutes is None:
            return self
        if minutes < 0:
            raise ValueError(f"quality window must be 0 minutes or more, got {minutes}")
        return replace(self, quality_window_minutes=minutes)


@dataclass(frozen=True)
class EnrollmentIntent:
    """What enrolling one lead in one sequence would send.

    ``key`` is the idempotency key (``<sequence key>:<email>``); ``attributes`` the prospect
    attributes (Outreach names); ``fingerprint`` a digest of everything sent, so that a
    correction of the lead is seen as a change; ``problems`` what makes it unfit to send
    (empty when fit).
    """

    key: str
    email: str
    sequence: SequenceSpec
    mailbox: str
    attributes: Mapping[str, Any]
    problems: tuple[str, ...]

    @property
    def payload(self) -> dict[str, Any]:
        """What is sent and kept with the enrollment: the attributes and the mailbox."""
        return {"attributes": dict(self.attributes), "mailbox": self.mailbox}

    @property
    def fingerprint(self) -> str:
        return payload_fingerprint(self.sequence.key, self.payload)


def payload_fingerprint(sequence_key: str, payload: Mapping[str, Any]) -> str:
    """sha256 of the sequence key and the payload's canonical JSON."""
    canonical = json.dumps([sequence_key, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(sequence_key: str, email: str) -> str:
    """The one key of a lead in a sequence: ``marketing_leaders:jo@hooli.com``."""
    return f"{sequence_key}:{email.strip().lower()}"


def _territory_names() -> frozenset[str]:
    rules = default_territory_rules()
    names = {rules.unassigned.name}
    names.update(account.territory for account in rules.named_accounts.values())
    for territory, _ in rules.territories:
        names.add(territory.name)
        names.update(segment.name for segment in territory.segments)
    return frozenset(names)


def _check(path: Path, data: _SequencesFile) -> None:
    """Raise ConfigError for references to things that do not exist."""

    def expect(where: str, found: object, expected: str) -> ConfigError:
        return ConfigError(f"{path}: {where}: expected {expected} (found {found!r})")

    missing = [s for s in ALWAYS_BLOCKING if s not in data.blocking_states]
    if missing:
        raise expect(
            "blocking_states", data.blocking_states, f"a list including {', '.join(missing)}"
        )
    names: dict[str, str] = {}
    for key, sequence in data.sequences.items():
        if names.setdefault(sequence.name, key) != key:
            raise expect(
                f"sequences.{key}.name",
                sequence.name,
                f"a name no other sequence has (sequences.{names[sequence.name]} has it)",
            )
    territories = _territory_names()
    owners = _routed_owner_ids()
    for owner in data.owner_mailboxes:
        if owner not in owners:
            raise expect(
                "owner_mailboxes",
                owner,
                f"an owner id the routing rules of territories.yaml deal leads to "
                f"({', '.join(sorted(owners))})",
            )
    labels = default_persona_rules().persona_labels
    for i, rule in enumerate(data.rules):
        if rule.sequence not in data.sequences:
            raise expect(
                f"rules[{i}].sequence",
                rule.sequence,
                f"a key under sequences ({', '.join(data.sequences)})",
            )
        for persona in rule.personas or []:
            if persona not in labels:
                raise expect(f"rules[{i}].personas", persona, "a persona label of personas.yaml")
        for territory in rule.territories or []:
            if territory not in territories:
                raise expect(
                    f"rules[{i}].territories",
                    territory,
                    f"a territory or segment name of territories.yaml "
                    f"({', '.join(sorted(territories))})",
                )


def _routed_owner_ids() -> frozenset[str]:
    """The CRM owner ids the routing rules deal leads to."""
    rules = default_territory_rules()
    owners = {account.owner for account in rules.named_accounts.values()}
    for territory, _ in rules.territories:
        owners.update(territory.owners)
        for segment in territory.segments:
            owners.update(segment.owners)
    owners.update(rules.unassigned.owners)
    return frozenset(owners)


def load_sequence_rules(path: Path | None = None) -> SequenceRules:
    """Load and validate the enrollment rules; the bundled ``config/sequences.yaml`` by
    default. Raises ConfigError naming the file, the key, what was expected and the value."""
    path = path or config_path("sequences.yaml")
    data = load_model(path, _SequencesFile)
    _check(path, data)
    return SequenceRules(
        quality_window_minutes=data.quality_window_minutes,
        claim_lease_minutes=data.claim_lease_minutes,
        max_attempts=data.max_attempts,
        blocking_states=frozenset(data.blocking_states),
        placeholders=frozenset(compact_key(v) for v in data.placeholder_values),
        default_mailbox=data.default_mailbox,
        owner_mailboxes=dict(data.owner_mailboxes),
        sequences={
            key: SequenceSpec(key, s.name, tuple(dict.fromkeys(s.personalization)))
            for key, s in data.sequences.items()
        },
        rules=tuple(data.rules),
    )


@cache
def default_sequence_rules() -> SequenceRules:
    """The bundled enrollment rules, loaded once per process."""
    return load_sequence_rules()


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _matches(rule: _Rule, lead: Mapping[str, Any]) -> bool:
    conditions = (
        (rule.personas, "persona"),
        (rule.functions, "function"),
        (rule.seniorities, "seniority"),
        (rule.territories, "territory"),
        (rule.country_codes, "country_code"),
    )
    for allowed, column in conditions:
        if allowed is not None and _text(lead.get(column)) not in allowed:
            return False
    if rule.min_fit_score is not None:
        score = lead.get("fit_score")
        if score is None or int(score) < rule.min_fit_score:
            return False
    return True


def route_to_sequence(lead: Mapping[str, Any], rules: SequenceRules) -> SequenceSpec | None:
    """The sequence of the first rule ``lead`` matches, or None."""
    for rule in rules.rules:
        if _matches(rule, lead):
            return rules.sequences[rule.sequence]
    return None


def personalization_problems(
    lead: Mapping[str, Any], fields: tuple[str, ...], rules: SequenceRules
) -> list[str]:
    """Why the values of ``fields`` are unfit for a template, one message per field at most,
    e.g. ``first_name '{{first_name}}': a template placeholder left in; expected a real
    first name``. Empty when every field is fit."""
    flagged = _flagged_fields(lead.get("flags"))
    problems = []
    for name in fields:
        value = _text(lead.get(name))
        problem = _value_problem(name, value, rules.placeholders)
        if problem is None and name in flagged:
            problem = f"flagged by the transform ({flagged[name]})"
        if problem is not None:
            what = name.replace("_", " ")
            problems.append(f"{name} {value!r}: {problem}; expected a real {what}")
    return problems


def _value_problem(name: str, value: str, placeholders: frozenset[str]) -> str | None:
    if not value:
        return "missing"
    if _TEMPLATE_LEFTOVER.search(value):
        return "a template placeholder left in"
    key = compact_key(value)
    if not key:
        return "punctuation only"
    if key in placeholders:
        return "a placeholder value"
    if name in PERSON_NAME_FIELDS:
        if "@" in value or any(c.isdigit() for c in value):
            return "not a person's name"
        letters = [c for c in value if c.isalpha()]
        if len(letters) == 1:
            return "a single initial"
        if len(letters) > 2 and all(c.isupper() for c in letters):
            return "in capitals only"
    return None


def _flagged_fields(flags: object) -> dict[str, str]:
    """The fields the transform flagged (``annual_revenue: no exchange rate ...``), with
    the flag."""
    flagged: dict[str, str] = {}
    for flag in _text(flags).split("; "):
        field, sep, _ = flag.partition(":")
        if sep and field.strip():
            flagged.setdefault(field.strip(), flag)
    return flagged


def prospect_attributes(lead: Mapping[str, Any]) -> dict[str, Any]:
    """The prospect attributes sent for ``lead``: its e-mail and every known field it has."""
    attributes: dict[str, Any] = {"emails": [_text(lead.get("email")).lower()]}
    for column, attribute in PROSPECT_ATTRIBUTES.items():
        value = _text(lead.get(column))
        if value:
            attributes[attribute] = value
    return attributes


def build_intent(lead: Mapping[str, Any], rules: SequenceRules) -> EnrollmentIntent | None:
    """The enrollment ``lead`` calls for under ``rules``, or None when no rule matches."""
    sequence = route_to_sequence(lead, rules)
    if sequence is None:
        return None
    email = _text(lead.get("email")).lower()
    owner = _text(lead.get("owner_id"))
    return EnrollmentIntent(
        key=idempotency_key(sequence.key, email),
        email=email,
        sequence=sequence,
        mailbox=rules.owner_mailboxes.get(owner, rules.default_mailbox),
        attributes=prospect_attributes(lead),
        problems=tuple(personalization_problems(lead, sequence.personalization, rules)),
    )
