"""The field-mapping registry: source headers -> canonical fields -> CRM properties.

The registry lives in ``config/mappings/v<N>.yaml``; each version is a whole file so that
any two versions can be compared and every record can name the version that made it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gtm_orchestration.lib.config import ConfigError, config_path, load_model
from gtm_orchestration.lib.conversion import DEFAULT_DATE_LOCALE, parse_date

MAPPINGS_DIR = config_path("mappings")

# The canonical lead record every source maps into (contract section 3).
CANONICAL_FIELDS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "title",
    "company",
    "website",
    "phone",
    "country",
    "state",
    "city",
    "industry",
    "annual_revenue",
    "employees",
    # Optional fields beyond the contract's lead headers: when the person submitted the form
    # or registered (a date), and whether they agreed to marketing e-mail (yes/no).
    "submitted_at",
    "marketing_opt_in",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    required: bool = False
    aliases: tuple[str, ...] = ()


class SourceSpec(_Strict):
    description: str = ""
    kinds: tuple[Literal["file", "form", "api"], ...] = ("file",)
    canonical_headers: bool = True
    fields: dict[str, FieldSpec]
    ignore: tuple[str, ...] = ()
    # How the source writes numeric dates: 03/04/2025 is March 4 in en_US, April 3 in en_GB.
    date_locale: str = DEFAULT_DATE_LOCALE

    @field_validator("date_locale")
    @classmethod
    def _known_locale(cls, locale: str) -> str:
        parse_date(None, locale)  # raises ValueError naming what a locale looks like
        return locale

    @model_validator(mode="after")
    def _known_fields(self) -> SourceSpec:
        unknown = sorted(set(self.fields) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown canonical field(s) {unknown}; expected some of {list(CANONICAL_FIELDS)}"
            )
        if "email" not in self.fields:
            raise ValueError("every source must map the canonical field 'email'")
        return self


class RegistryFile(_Strict):
    version: int = Field(ge=1)
    sources: dict[str, SourceSpec]
    crm: dict[Literal["contacts", "companies"], dict[str, str]]


def normalize_header(header: str) -> str:
    """Header comparison key: case-folded, trimmed, runs of spaces/underscores folded."""
    return re.sub(r"[\s_]+", " ", header.lstrip("\ufeff").strip()).casefold()


@dataclass(frozen=True)
class HeaderCheck:
    """How a file's header row maps onto a source's canonical fields."""

    columns: dict[int, str]  # column index -> canonical field
    missing: tuple[str, ...]  # required canonical fields with no matching header
    unexpected: tuple[str, ...]  # headers that match nothing
    duplicated: tuple[str, ...]  # canonical fields fed by more than one header

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.duplicated)

    def describe(self, source: str) -> str:
        parts = []
        if self.missing:
            parts.append("missing required header(s) " + ", ".join(map(repr, self.missing)))
        if self.unexpected:
            parts.append("unexpected header(s) " + ", ".join(map(repr, self.unexpected)))
        if self.duplicated:
            parts.append("more than one header for " + ", ".join(map(repr, self.duplicated)))
        return f"headers do not fit source {source!r}: " + "; ".join(parts)


@dataclass(frozen=True)
class Source:
    name: str
    spec: SourceSpec

    def header_lookup(self) -> dict[str, str]:
        """Normalized header -> canonical field."""
        lookup: dict[str, str] = {}
        for field, spec in self.spec.fields.items():
            if self.spec.canonical_headers:
                lookup[normalize_header(field)] = field
            for alias in spec.aliases:
                lookup[normalize_header(alias)] = field
        return lookup

    def check_headers(self, headers: list[str]) -> HeaderCheck:
        """Match a header row against this source; returns what matched and what did not."""
        lookup = self.header_lookup()
        ignored = {normalize_header(h) for h in self.spec.ignore}
        columns: dict[int, str] = {}
        unexpected: list[str] = []
        seen: dict[str, int] = {}
        for index, header in enumerate(headers):
            key = normalize_header(header)
            if key in lookup:
                field = lookup[key]
                columns[index] = field
                seen[field] = seen.get(field, 0) + 1
            elif key not in ignored:
                unexpected.append(header)
        missing = tuple(
            self._display_name(f)
            for f, s in self.spec.fields.items()
            if s.required and f not in seen
        )
        duplicated = tuple(sorted(f for f, n in seen.items() if n > 1))
        return HeaderCheck(columns, missing, tuple(unexpected), duplicated)

    def map_record(self, record: dict[str, object]) -> tuple[dict[str, str | None], list[str]]:
        """Map one JSON record (a form submission) to canonical fields.

        Returns the canonical values (strings or None) and the keys that matched nothing.
        """
        lookup = self.header_lookup()
        ignored = {normalize_header(h) for h in self.spec.ignore}
        values: dict[str, str | None] = dict.fromkeys(CANONICAL_FIELDS)
        unexpected = []
        for key, value in record.items():
            field = lookup.get(normalize_header(key))
            if field is None:
                if normalize_header(key) not in ignored:
                    unexpected.append(key)
                continue
            values[field] = None if value is None else str(value)
        return values, unexpected

    def _display_name(self, field: str) -> str:
        spec = self.spec.fields[field]
        if self.spec.canonical_headers or not spec.aliases:
            return field
        return spec.aliases[0]


@dataclass(frozen=True)
class MappingRegistry:
    version: int
    path: Path
    sources: dict[str, Source]
    crm: dict[str, dict[str, str]]

    def source(self, name: str) -> Source:
        """The registered source ``name``; ConfigError naming the known ones otherwise."""
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources))
            raise ConfigError(
                f"{self.path}: sources.{name}: no such source registered (known: {known})"
            ) from None

    def file_sources(self) -> list[str]:
        return sorted(n for n, s in self.sources.items() if "file" in s.spec.kinds)


def available_versions(directory: Path = MAPPINGS_DIR) -> list[int]:
    """Registry versions present on disk, ascending."""
    versions = []
    for path in directory.glob("v*.yaml"):
        match = re.fullmatch(r"v(\d+)\.yaml", path.name)
        if match:
            versions.append(int(match.group(1)))
    return sorted(versions)


def mappings_dir() -> Path:
    """The registry's folder: GTM_MAPPINGS_DIR, else the one shipped in the package."""
    configured = os.environ.get("GTM_MAPPINGS_DIR")
    return Path(configured) if configured else MAPPINGS_DIR


def load_registry(version: int | None = None, directory: Path | None = None) -> MappingRegistry:
    """Load registry ``version`` from ``directory`` (defaults: GTM_MAPPING_VERSION or the
    highest version on disk, from ``mappings_dir()``)."""
    directory = directory or mappings_dir()
    if version is None:
        pinned = os.environ.get("GTM_MAPPING_VERSION")
        versions = available_versions(directory)
        if not versions:
            raise ConfigError(f"{directory}: no mapping registry file v<N>.yaml found")
        version = int(pinned) if pinned else versions[-1]
    return _load_registry_file(directory / f"v{version}.yaml", version)


@cache
def _load_registry_file(path: Path, version: int) -> MappingRegistry:
    if not path.is_file():
        known = ", ".join(f"v{v}" for v in available_versions(path.parent)) or "none"
        raise ConfigError(f"{path}: no such mapping registry version (on disk: {known})")
    parsed = load_model(path, RegistryFile)
    if parsed.version != version:
        raise ConfigError(
            f"{path}: version: expected {version} (the file name), found {parsed.version}"
        )
    sources = {name: Source(name, spec) for name, spec in parsed.sources.items()}
    return MappingRegistry(version, path, sources, {k: dict(v) for k, v in parsed.crm.items()})
