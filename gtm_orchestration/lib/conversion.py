"""Type conversions of raw field values: money amounts, headcounts and headcount bands.

Each function takes one raw value and returns a plain value, so the transform can run it
once per distinct value of a batch. All are pure, deterministic, cached and idempotent:
converting an already converted value gives it back unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from functools import cache, lru_cache

from gtm_orchestration.lib.config import ConfigError, config_path
from gtm_orchestration.lib.crm_schema import portal_schema

CACHE_SIZE = 1 << 16


@dataclass(frozen=True)
class Converted:
    """A converted value, or the short reason the raw value could not be converted.

    ``value`` None with ``error`` None means the raw value was empty.
    """

    value: float | int | str | None
    error: str | None = None


EMPTY = Converted(None, None)

_MULTIPLIERS = {
    "k": 10**3,
    "thousand": 10**3,
    "m": 10**6,
    "mm": 10**6,  # finance shorthand: "$5MM" is five million
    "mn": 10**6,
    "mil": 10**6,
    "mio": 10**6,
    "million": 10**6,
    "millions": 10**6,
    "b": 10**9,
    "bn": 10**9,
    "billion": 10**9,
    "billions": 10**9,
}
_HEADCOUNT_MULTIPLIERS = {"k": 10**3, "thousand": 10**3}

# Currency marks and hedges carry no amount; USD is assumed and no FX is applied.
_MONEY_NOISE = re.compile(
    r"(?<![a-z])(?:dollars?|euros?|usd|eur|gbp|cad|aud|chf|approx(?:imately)?|about|around|"
    r"over|more than)(?![a-z])|us\$|[$€£¥~>≈]"
)
_HEADCOUNT_NOISE = re.compile(
    r"(?<![a-z])(?:employees?|people|staff|ftes?|emp|ppl|headcount|mitarbeiter|empleados|"
    r"employ[ée]s|approx(?:imately)?|about|around|over|more than)(?![a-z])|[~>≈]"
)


def _amount(number: str, unit: str) -> str:
    return rf"(?P<{number}>\d[\d,.' ]*)\s*(?P<{unit}>[a-z]+)?"


# One amount or a range of two, optionally followed by "+": "1.2m", "10-50m", "1,000+".
_RANGE = re.compile(rf"^{_amount('n1', 'u1')}(?:\s*(?:-|–|—|to)\s*{_amount('n2', 'u2')})?\s*\+?$")


def _parse_number(text: str, *, dots_group_thousands: bool) -> Decimal | None:
    """A number written with thousands separators, or None.

    ``1,200,000`` and ``1.200.000,5`` and ``1 200 000`` are understood. A single comma
    followed by one or two digits is a decimal comma (``1,5``). A single dot is a decimal
    point unless ``dots_group_thousands`` and exactly three digits follow it.
    """
    text = re.sub(r"[ ']", "", text)
    if "," in text and "." in text:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
        grouping = "." if decimal_mark == "," else ","
        text = text.replace(grouping, "").replace(decimal_mark, ".")
    elif "," in text:
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+", text):
            text = text.replace(",", "")
        elif re.fullmatch(r"\d+,\d{1,2}", text):
            text = text.replace(",", ".")
        else:
            return None
    elif text.count(".") > 1 or (dots_group_thousands and re.fullmatch(r"\d{1,3}\.\d{3}", text)):
        if not re.fullmatch(r"\d{1,3}(?:\.\d{3})+", text):
            return None
        text = text.replace(".", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _parse_range(
    text: str, multipliers: dict[str, int], *, dots_group_thousands: bool
) -> tuple[Decimal, Decimal] | None:
    """The (low, high) amounts of ``12``, ``1.5k``, ``10-50M``, ``$1M - $5M``; None if not one."""
    match = _RANGE.match(text)
    if match is None:
        return None
    units = [match["u1"], match["u2"]]
    # In "10-50M" the unit written once applies to both ends.
    if units[0] is None and match["n2"] is not None:
        units[0] = units[1]
    amounts = []
    for number, unit in ((match["n1"], units[0]), (match["n2"], units[1])):
        if number is None:
            continue
        if unit is not None and unit not in multipliers:
            return None
        value = _parse_number(number.strip(), dots_group_thousands=dots_group_thousands)
        if value is None:
            return None
        amounts.append(value * multipliers.get(unit or "", 1))
    low, high = amounts[0], amounts[-1]
    return (low, high) if low <= high else None


def _is_number(raw: object) -> bool:
    return isinstance(raw, int | float) and not isinstance(raw, bool)


@lru_cache(maxsize=CACHE_SIZE)
def parse_money(raw: str | float | None) -> Converted:
    """An amount of money as a float (USD assumed), e.g. ``$1.2M`` -> 1200000.0.

    Understands currency marks and codes, ``k``/``M``/``MM``/``bn``/``billion`` units,
    thousands separators and ranges (``$10M-$50M`` gives the midpoint). Returns
    ``Converted(None, None)`` for an empty value and ``Converted(None, "not a money amount")``
    for anything else that is not an amount.
    """
    if raw is None:
        return EMPTY
    if _is_number(raw):
        number = float(raw)
        if not math.isfinite(number) or number < 0:
            return Converted(None, "not a money amount")
        return Converted(round(number, 2))
    text = str(raw).strip().lower()
    if not text:
        return EMPTY
    text = re.sub(r"\s+", " ", _MONEY_NOISE.sub(" ", text)).strip()
    amounts = _parse_range(text, _MULTIPLIERS, dots_group_thousands=False)
    if amounts is None:
        return Converted(None, "not a money amount")
    low, high = amounts
    return Converted(float(round((low + high) / 2, 2)))


@lru_cache(maxsize=CACHE_SIZE)
def parse_headcount(raw: str | int | float | None) -> Converted:
    """A number of employees as an int, e.g. ``51-200`` -> 125, ``1,000+`` -> 1000.

    A range gives its midpoint rounded down, ``N+`` gives N, ``10k`` gives 10000, words such
    as ``employees`` are ignored, and ``1.000`` is a thousand. Returns
    ``Converted(None, None)`` when empty and ``Converted(None, "not a headcount")`` for
    anything that is not a positive headcount.
    """
    if raw is None:
        return EMPTY
    if _is_number(raw):
        if not math.isfinite(raw) or raw < 1:
            return Converted(None, "not a headcount")
        return Converted(math.floor(raw))
    text = str(raw).strip().lower()
    if not text:
        return EMPTY
    text = re.sub(r"\s+", " ", _HEADCOUNT_NOISE.sub(" ", text)).strip()
    amounts = _parse_range(text, _HEADCOUNT_MULTIPLIERS, dots_group_thousands=True)
    if amounts is None:
        return Converted(None, "not a headcount")
    low, high = amounts
    count = int(((low + high) / 2).to_integral_value(rounding=ROUND_FLOOR))
    if count < 1:
        return Converted(None, "not a headcount")
    return Converted(count)


@cache
def _headcount_bands() -> tuple[tuple[int, str], ...]:
    """(lowest headcount, option) for the CRM's ``numemployees`` options, ascending."""
    options = portal_schema().objects["contacts"].properties["numemployees"].options
    bands = []
    for option in options:
        match = re.fullmatch(r"(\d+)(?:-\d+|\+)", option)
        if match is None:
            raise ConfigError(
                f"{config_path('crm', 'hubspot_properties.yaml')}: "
                f"objects.contacts.properties.numemployees.options: expected 'low-high' or "
                f"'low+' (found {option!r})"
            )
        bands.append((int(match[1]), option))
    return tuple(sorted(bands))


def headcount_band(n: int | None) -> str | None:
    """The CRM ``numemployees`` option for ``n`` employees, or None when unknown or < 1.

    The CRM's options share their boundaries (``1-5``, ``5-25``, ...). A boundary value
    belongs to the band it starts: 5 -> ``5-25``, 1000 -> ``1000-5000``, 10000 -> ``10000+``,
    so ``N+`` headcounts (``1,000+``) land in the band that begins at N.
    """
    if n is None or n < 1:
        return None
    band = None
    for low, option in _headcount_bands():
        if n >= low:
            band = option
    return band
