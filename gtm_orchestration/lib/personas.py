"""Job title classification: function, seniority and persona, by the rules in
``config/personas.yaml``.

``classify_title`` is pure and cached per rule set, so a batch classifies each distinct
title once. The rules file explains, for the people who edit it, how a title is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from gtm_orchestration.lib.config import ConfigError, config_path, load_model
from gtm_orchestration.lib.conversion import CACHE_SIZE
from gtm_orchestration.lib.crm_schema import portal_schema
from gtm_orchestration.lib.normalize import fold


@dataclass(frozen=True)
class TitleClassification:
    """What a job title says about a person.

    ``function`` is a ``gtm_function`` option, ``seniority`` a ``gtm_seniority`` option,
    ``persona`` a persona label, and ``rule`` names the rules that fired, e.g.
    ``seniority:vp;function:marketing;persona:leader``, or ``none``.
    """

    function: str
    seniority: str
    persona: str
    rule: str


def _crm_option(property_name: str) -> AfterValidator:
    def check(value: str) -> str:
        options = portal_schema().objects["contacts"].properties[property_name].options
        if value not in options:
            raise ValueError(f"expected a {property_name} option, one of {', '.join(options)}")
        return value

    return AfterValidator(check)


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"expected a regular expression: {exc}") from exc
    return pattern


Function = Annotated[str, _crm_option("gtm_function")]
Seniority = Annotated[str, _crm_option("gtm_seniority")]
Regex = Annotated[str, AfterValidator(_regex)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Matcher(_Strict):
    keywords: list[str] = []
    patterns: list[Regex] = []


class _SeniorityRule(_Matcher):
    name: str
    seniority: Seniority


class _FunctionRule(_Matcher):
    function: Function
    # Words that only hint at a function (role nouns such as "engineer", adjectives such as
    # "technical", "founder"): they count only when no other rule names a function.
    fallback: bool = False


class _PersonaOverride(_Matcher):
    name: str
    persona: str
    functions: list[Function] | None = None
    seniorities: list[Seniority] | None = None


class _PersonasFile(_Strict):
    version: int
    noise: list[Regex] = []
    abbreviations: dict[str, str] = {}
    seniority: list[_SeniorityRule]
    functions: list[_FunctionRule]
    persona_overrides: list[_PersonaOverride] = []
    seniority_groups: dict[str, list[Seniority]]
    personas: dict[Function, dict[str, str]]
    unknown_persona: str


def _plain(text: str) -> str:
    """Accents and case dropped, ``&``/``+`` as ``and``, punctuation as single spaces."""
    text = re.sub(r"[&+]", " and ", fold(text))
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def _alternation(keywords: list[str]) -> str:
    # Longest first, so that at one position the longer phrase is the one that matches.
    ordered = sorted(set(keywords), key=lambda k: (-len(k), k))
    return r"(?<!\w)(?:" + "|".join(re.escape(k) for k in ordered) + r")(?!\w)"


class PersonaRules:
    """Compiled persona rules; ``classify`` is cached per instance.

    ``persona_labels`` holds every persona a classification can give.
    """

    def __init__(self, data: _PersonasFile) -> None:
        self._noise = [re.compile(p) for p in data.noise]
        abbreviations = {_plain(k): _plain(v) for k, v in data.abbreviations.items()}
        self._abbreviations = abbreviations
        self._abbreviation_re = (
            re.compile(_alternation(list(abbreviations))) if abbreviations else None
        )
        self._seniority = [(r.name, r.seniority, self._matcher(r)) for r in data.seniority]
        self._functions = [(r.function, self._matcher(r)) for r in data.functions if not r.fallback]
        self._fallback_functions = [
            (r.function, self._matcher(r)) for r in data.functions if r.fallback
        ]
        self._overrides = [
            (o, self._matcher(o) if o.keywords or o.patterns else None)
            for o in data.persona_overrides
        ]
        self._group_of = {s: g for g, members in data.seniority_groups.items() for s in members}
        self._personas = data.personas
        self._unknown_persona = data.unknown_persona
        self.persona_labels = frozenset(
            [label for labels in data.personas.values() for label in labels.values()]
            + [o.persona for o in data.persona_overrides]
            + [data.unknown_persona]
        )
        self.classify = lru_cache(maxsize=CACHE_SIZE)(self._classify)

    def _expand(self, text: str) -> str:
        if self._abbreviation_re is None:
            return text
        return self._abbreviation_re.sub(lambda m: self._abbreviations[m.group()], text)

    def _matcher(self, rule: _Matcher) -> re.Pattern[str] | None:
        parts = list(rule.patterns)
        keywords = [self._expand(_plain(k)) for k in rule.keywords]
        if keywords:
            parts.insert(0, _alternation(keywords))
        return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    def normalize_title(self, title: str) -> str:
        """The title as the rules see it: folded, noise cut, abbreviations expanded."""
        text = fold(title)
        for noise in self._noise:
            text = noise.sub("", text)
        return self._expand(_plain(text))

    def _function(self, text: str) -> str | None:
        for candidates in (self._functions, self._fallback_functions):
            best: tuple[int, int, int] | None = None
            found = None
            for order, (function, matcher) in enumerate(candidates):
                match = matcher.search(text) if matcher else None
                if match is None:
                    continue
                rank = (match.start(), -len(match.group()), order)
                if best is None or rank < best:
                    best, found = rank, function
            if found is not None:
                return found
        return None

    def _classify(self, title: str | None) -> TitleClassification:
        text = self.normalize_title(title or "")
        fired = []
        seniority = "unknown"
        for name, value, matcher in self._seniority:
            if matcher is not None and matcher.search(text):
                seniority = value
                fired.append(f"seniority:{name}")
                break
        function = self._function(text)
        if function is not None:
            fired.append(f"function:{function}")
        if not fired:
            return TitleClassification("other", "unknown", self._unknown_persona, "none")
        function = function or "other"
        for override, matcher in self._overrides:
            if (
                (override.functions is None or function in override.functions)
                and (override.seniorities is None or seniority in override.seniorities)
                and (matcher is None or matcher.search(text))
            ):
                fired.append(f"persona:{override.name}")
                return TitleClassification(function, seniority, override.persona, ";".join(fired))
        group = self._group_of[seniority]
        fired.append(f"persona:{group}")
        return TitleClassification(
            function, seniority, self._personas[function][group], ";".join(fired)
        )


def _check_tables(path: Path, data: _PersonasFile) -> None:
    """Raise ConfigError unless every seniority and function has its place in the tables."""
    properties = portal_schema().objects["contacts"].properties
    for i, rule in enumerate(data.seniority):
        if not rule.keywords and not rule.patterns:
            raise ConfigError(f"{path}: seniority[{i}]: expected keywords or patterns")
    grouped = [s for members in data.seniority_groups.values() for s in members]
    for seniority in properties["gtm_seniority"].options:
        if grouped.count(seniority) != 1:
            raise ConfigError(
                f"{path}: seniority_groups: expected {seniority!r} in exactly one group "
                f"(found it in {grouped.count(seniority)})"
            )
    for function in properties["gtm_function"].options:
        labels = data.personas.get(function)
        if labels is None:
            raise ConfigError(f"{path}: personas: expected an entry for the function {function!r}")
        missing = set(data.seniority_groups) - set(labels)
        if missing:
            raise ConfigError(
                f"{path}: personas.{function}: expected a label for every seniority group "
                f"(missing {', '.join(sorted(missing))})"
            )


def load_persona_rules(path: Path | None = None) -> PersonaRules:
    """Load and compile persona rules; the bundled ``config/personas.yaml`` by default."""
    path = path or config_path("personas.yaml")
    data = load_model(path, _PersonasFile)
    _check_tables(path, data)
    return PersonaRules(data)


@cache
def default_persona_rules() -> PersonaRules:
    """The bundled persona rules, loaded once per process."""
    return load_persona_rules()


def classify_title(title: str | None, rules: PersonaRules | None = None) -> TitleClassification:
    """The function, seniority and persona a job title says, and the rules that said so.

    ``VP of Marketing`` -> (marketing, vp, Marketing Leader); ``Leiter Vertrieb`` -> (sales,
    director, Sales Leader). An empty or unrecognised title gives (other, unknown,
    Unknown, ``none``). Uses the bundled rules unless ``rules`` is given.
    """
    return (rules or default_persona_rules()).classify(title)
