"""Fit scoring: points for how closely a lead matches the ideal customer profile, by the
tables in ``config/scoring.yaml``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from gtm_orchestration.lib.config import config_path, load_model
from gtm_orchestration.lib.conversion import CACHE_SIZE
from gtm_orchestration.lib.normalize import CountryCode, IndustryValue
from gtm_orchestration.lib.personas import Function, Seniority


@dataclass(frozen=True)
class Score:
    """A 0..100 score and the reasons for it, e.g. ``"industry COMPUTER_SOFTWARE +25"``."""

    value: int
    reasons: tuple[str, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Table(_Strict):
    missing: int = 0
    default: int = 0


class _IndustryTable(_Table):
    points: dict[IndustryValue, int]


class _CountryTable(_Table):
    points: dict[CountryCode, int]


class _SeniorityTable(_Table):
    points: dict[Seniority, int]


class _FunctionTable(_Table):
    points: dict[Function, int]


class _Band(_Strict):
    min: int
    points: int


class _EmployeeBands(_Strict):
    missing: int = 0
    bands: list[_Band]

    @field_validator("bands")
    @classmethod
    def _ascending(cls, bands: list[_Band]) -> list[_Band]:
        if not bands or bands[0].min != 1:
            raise ValueError("expected bands starting with min: 1")
        for lower, upper in zip(bands, bands[1:], strict=False):
            if upper.min <= lower.min:
                raise ValueError(
                    f"expected ascending min values (found {upper.min} after {lower.min})"
                )
        return bands


class _ScoringFile(_Strict):
    version: int
    industry: _IndustryTable
    employees: _EmployeeBands
    country: _CountryTable
    seniority: _SeniorityTable
    function: _FunctionTable


@dataclass(frozen=True, eq=False)
class ScoringRules:
    """The fit score tables (``config/scoring.yaml``)."""

    tables: _ScoringFile


def load_scoring_rules(path: Path | None = None) -> ScoringRules:
    """Load the fit score tables; the bundled ``config/scoring.yaml`` by default."""
    return ScoringRules(load_model(path or config_path("scoring.yaml"), _ScoringFile))


@cache
def default_scoring_rules() -> ScoringRules:
    """The bundled fit score tables, loaded once per process."""
    return load_scoring_rules()


def _looked_up(
    name: str, value: str | None, table: _Table, points: dict[str, int]
) -> tuple[int, str]:
    if value is None:
        return table.missing, f"{name} unknown"
    return points.get(value, table.default), f"{name} {value}"


def _employees(n: int | None, table: _EmployeeBands) -> tuple[int, str]:
    if n is None or n < 1:
        return table.missing, "employees unknown"
    bands = table.bands
    index = max(i for i, band in enumerate(bands) if n >= band.min)
    band = bands[index]
    upper = f"-{bands[index + 1].min - 1}" if index + 1 < len(bands) else "+"
    return band.points, f"employees {band.min}{upper}"


@lru_cache(maxsize=CACHE_SIZE)
def score_fit(
    *,
    industry: str | None,
    employees: int | None,
    country_code: str | None,
    seniority: str | None,
    function: str | None,
    rules: ScoringRules | None = None,
) -> Score:
    """The ICP fit score of a lead or company, 0..100, with one reason per attribute that
    added or removed points.

    ``industry`` is a CRM industry option, ``employees`` a headcount, ``country_code`` an
    ISO alpha-2 code, ``seniority`` and ``function`` the title classification (None for a
    company). Uses the bundled tables unless ``rules`` is given.
    """
    attributes = {
        "industry": industry,
        "employees": employees,
        "country_code": country_code,
        "seniority": seniority,
        "function": function,
    }
    return fit_of([fit_part(name, value, rules) for name, value in attributes.items()])


def fit_part(attribute: str, value: Any, rules: ScoringRules | None = None) -> tuple[int, str]:
    """The points and the reason's label that one attribute of score_fit (its keyword) adds
    on its own: score_fit is fit_of the parts of its five attributes. A part of no points
    gives no reason and has no label, so that parts alike in effect are equal."""
    tables = (rules or default_scoring_rules()).tables
    if attribute == "employees":
        points, label = _employees(value, tables.employees)
    else:
        table, name = {
            "industry": (tables.industry, "industry"),
            "country_code": (tables.country, "country"),
            "seniority": (tables.seniority, "seniority"),
            "function": (tables.function, "function"),
        }[attribute]
        points, label = _looked_up(name, value, table, table.points)
    return (points, label) if points else (0, "")


def fit_of(parts: Sequence[tuple[int, str]]) -> Score:
    """The fit score of the points and reason labels of a lead's attributes (fit_part)."""
    total = sum(points for points, _ in parts)
    reasons = [f"{label} {points:+d}" for points, label in parts if points]
    value = min(100, max(0, total))
    if value != total:
        reasons.append(f"total {total} clamped to {value}")
    return Score(value, tuple(reasons))
