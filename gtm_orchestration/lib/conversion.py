"""Type conversions of raw field values: money amounts and their currency, headcounts and
headcount bands, dates and date-times, and yes/no values.

Each function takes one raw value and returns a ``Converted``, so the transform can run it
once per distinct value of a batch. All are pure, deterministic, cached and idempotent:
converting an already converted value gives it back unchanged. A value that cannot be
converted is never dropped silently: the result keeps the raw value and says why.
"""

from __future__ import annotations

import contextlib
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from functools import cache, lru_cache
from pathlib import Path

import pycountry
from pydantic import BaseModel, ConfigDict

from gtm_orchestration.lib.config import ConfigError, config_path, load_model
from gtm_orchestration.lib.crm_schema import portal_schema

CACHE_SIZE = 1 << 16

RawValue = str | int | float | bool | date | datetime | None

# Typed, because True, 1 and 1.0 are one key otherwise and would share a result.
_cached = lru_cache(maxsize=CACHE_SIZE, typed=True)


@dataclass(frozen=True)
class Converted:
    """A converted value, or the reason the raw value could not be converted.

    ``value`` None with ``error`` None means the raw value was empty (None, blank, or a
    float NaN). When ``error`` is set, ``value`` is None and ``raw`` holds the value as
    given, so the caller can keep it and flag it. ``currency`` is the ISO 4217 code of a
    money amount when the amount names one.
    """

    value: float | int | str | bool | date | datetime | None
    error: str | None = None
    currency: str | None = None
    raw: RawValue = None


EMPTY = Converted(None, None)


def fold(text: str) -> str:
    """``text`` case-folded with accents removed: ``"Québec"`` -> ``"quebec"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _is_number(raw: object) -> bool:
    return isinstance(raw, int | float) and not isinstance(raw, bool)


def _is_missing(raw: object) -> bool:
    """None, or NaN: how data frames write a missing number."""
    return raw is None or (isinstance(raw, float) and math.isnan(raw))


# ---------------------------------------------------------------------------------------
# Money

_MULTIPLIERS = {
    "k": 10**3,
    "thousand": 10**3,
    "tsd": 10**3,  # German "Tausend"
    "tys": 10**3,  # Polish "tysięcy"
    "m": 10**6,
    "mm": 10**6,  # finance shorthand: "$5MM" is five million
    "mn": 10**6,
    "mln": 10**6,
    "mil": 10**6,
    "mio": 10**6,
    "mi": 10**6,  # Brazilian "R$ 10 mi"
    "million": 10**6,
    "millions": 10**6,
    "millionen": 10**6,
    "millones": 10**6,
    "milioni": 10**6,
    "miljoen": 10**6,
    "milhões": 10**6,
    "b": 10**9,
    "bn": 10**9,
    "bln": 10**9,
    "bi": 10**9,
    "billion": 10**9,
    "billions": 10**9,
    "mrd": 10**9,  # German "Milliarde"
    "md": 10**9,  # French "milliard": "2 Md€"
    "mds": 10**9,
    "mld": 10**9,
    "milliard": 10**9,
    "milliards": 10**9,
    "milliarden": 10**9,
    "tn": 10**12,
    "trillion": 10**12,
    "lakh": 10**5,
    "lakhs": 10**5,
    "lac": 10**5,
    "lacs": 10**5,
    "crore": 10**7,
    "crores": 10**7,
    "cr": 10**7,
}
_HEADCOUNT_MULTIPLIERS = {"k": 10**3, "thousand": 10**3}

# Hedges and periods carry no amount: "about $3m", "$10M per year".
_MONEY_NOISE = re.compile(
    r"(?<![a-z])(?:approx(?:imately)?|about|around|circa|ca|over|more than|"
    r"per (?:year|annum)|a year|annually|p\.a)(?![a-z])\.?|/\s*(?:yr|year)\b|[~>≈]"
)
_HEADCOUNT_NOISE = re.compile(
    r"(?<![a-z])(?:employees?|people|persons|staff|ftes?|emp|ppl|headcount|workers|"
    r"mitarbeiter(?:innen)?|mitarbeitende|besch[äa]ftigte|empleados|employ[ée]s|salari[ée]s|"
    r"collaborateurs|dipendenti|medewerkers|funcion[áa]rios|approx(?:imately)?|about|"
    r"around|circa|ca|roughly|over|more than)(?![a-z])\.?|[~>≈]"
)
# Values that mean a company of one.
_SOLO = frozenset(
    {
        "self-employed",
        "self employed",
        "myself only",
        "just me",
        "sole proprietor",
        "sole trader",
        "freelance",
        "freelancer",
        "solo",
    }
)


def _amount(number: str, unit: str) -> str:
    return rf"(?P<{number}>\d[\d,.'’ ]*)\s*(?:(?P<{unit}>[^\W\d_]+)\.?)?"


# One amount or a range of two, optionally followed by "+": "1.2m", "10-50m", "1,000+".
_RANGE = re.compile(rf"^{_amount('n1', 'u1')}(?:\s*(?:-|–|—|to)\s*{_amount('n2', 'u2')})?\s*\+?$")


def _parse_number(text: str, *, dots_group_thousands: bool) -> Decimal | None:
    """A number written with thousands separators, or None.

    ``1,200,000`` and ``1.200.000,5`` and ``1 200 000`` are understood. A single comma
    followed by one or two digits is a decimal comma (``1,5``). A single dot is a decimal
    point unless ``dots_group_thousands`` and exactly three digits follow it.
    """
    text = re.sub(r"[ '’]", "", text)
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
    """The (low, high) amounts of ``12``, ``1.5k``, ``10-50M``, ``$1M - $5M``; None if not one.

    A single dot followed by three digits groups thousands when ``dots_group_thousands``,
    and always in a number without a unit: ``€1.200`` is twelve hundred, ``1.200m`` 1.2m.
    """
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
        value = _parse_number(
            number.strip(), dots_group_thousands=dots_group_thousands or unit is None
        )
        if value is None:
            return None
        amounts.append(value * multipliers.get(unit or "", 1))
    low, high = amounts[0], amounts[-1]
    return (low, high) if low <= high else None


class _CurrenciesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    symbols: dict[str, list[str]] = {}
    assumed: dict[str, list[str]] = {}
    ambiguous: dict[str, list[str]] = {}


@dataclass(frozen=True, eq=False)
class CurrencyMarks:
    """How amounts name their currency (``currencies.yaml`` over ISO 4217).

    ``codes`` maps a mark naming one currency to its code; ``shared`` maps a mark used by
    several currencies to them, the first being the one ``assumed`` when it is alone.
    """

    pattern: re.Pattern[str]
    codes: dict[str, str]
    shared: dict[str, tuple[str, ...]]
    assumed: frozenset[str]


def load_currency_marks(path: Path | None = None) -> CurrencyMarks:
    """Load a currency mark dictionary; the bundled one by default."""
    path = path or config_path("dictionaries", "currencies.yaml")
    data = load_model(path, _CurrenciesFile)
    iso = {c.alpha_3 for c in pycountry.currencies}
    codes = {code.lower(): code for code in iso}
    shared: dict[str, tuple[str, ...]] = {}
    where: dict[str, str] = {}

    def add(mark: str, section: str, currencies: list[str]) -> None:
        for code in currencies:
            if code not in iso:
                raise ConfigError(
                    f"{path}: {section}: expected an ISO 4217 currency code such as 'USD' "
                    f"(found {code!r})"
                )
        key = mark.lower()
        if key in codes or key in shared:
            raise ConfigError(
                f"{path}: {section}: {mark!r} is already a mark of "
                f"{where.get(key, 'an ISO 4217 code')}; expected each mark once"
            )
        where[key] = section
        if section.startswith("symbols."):
            codes[key] = currencies[0]
        else:
            shared[key] = tuple(currencies)

    for code, marks in data.symbols.items():
        for mark in marks:
            add(mark, f"symbols.{code}", [code])
    for section in ("assumed", "ambiguous"):
        for mark, currencies in getattr(data, section).items():
            if not currencies:
                raise ConfigError(f"{path}: {section}.{mark}: expected at least one currency")
            add(mark, f"{section}.{mark}", currencies)

    def as_regex(mark: str) -> str:
        # A mark made of letters must not match inside a word ("eur" in "europe").
        before = r"(?<![a-z])" if mark[0].isascii() and mark[0].isalpha() else ""
        after = r"(?![a-z])" if mark[-1].isascii() and mark[-1].isalpha() else ""
        return before + re.escape(mark) + after

    # ISO codes are found as any three-letter word and looked up: one alternative instead
    # of nearly two hundred keeps the search fast.
    marks = sorted({*codes, *shared} - {code.lower() for code in iso}, key=lambda m: (-len(m), m))
    return CurrencyMarks(
        pattern=re.compile("|".join([*map(as_regex, marks), r"(?<![a-z])[a-z]{3}(?![a-z])"])),
        codes=codes,
        shared=shared,
        assumed=frozenset(m.lower() for m in data.assumed),
    )


@cache
def _default_currency_marks() -> CurrencyMarks:
    return load_currency_marks()


_NOT_MONEY = "not a money amount (expected e.g. '$1.2M', '€900k' or '1.200.000 €')"


def _currency(text: str, marks: CurrencyMarks) -> tuple[str, str | None, str | None]:
    """``(text without currency marks, ISO code or None, error or None)``.

    A mark that names one currency settles it; a shared mark ("$") must agree with it, and
    alone stands for its first currency, unless it is ambiguous ("kr").
    """
    found: list[str] = []
    kept: list[str] = []
    end = 0
    for match in marks.pattern.finditer(text):
        mark = match.group()
        if mark in marks.codes or mark in marks.shared:
            found.append(mark)
            kept.append(text[end : match.start()])
            end = match.end()
    rest = " ".join([*kept, text[end:]])
    definite = {marks.codes[mark] for mark in found if mark in marks.codes}
    shared = [mark for mark in found if mark in marks.shared]
    if len(definite) == 1:
        code = next(iter(definite))
        clash = next((mark for mark in shared if code not in marks.shared[mark]), None)
        if clash is None:
            return rest, code, None
        definite.add(marks.shared[clash][0])
    elif not definite:
        ambiguous = next((mark for mark in shared if mark not in marks.assumed), None)
        if ambiguous is not None:
            candidates = ", ".join(marks.shared[ambiguous])
            return rest, None, f"ambiguous currency {ambiguous!r} (expected a code: {candidates})"
        definite = {marks.shared[mark][0] for mark in shared}
        if len(definite) <= 1:
            return rest, next(iter(definite), None), None
    return rest, None, f"two currencies in one amount ({', '.join(sorted(definite))})"


@_cached
def parse_money(raw: str | float | None) -> Converted:
    """An amount of money as a float and its currency: ``$1.2M`` -> 1200000.0 USD,
    ``1,2 Mio. €`` -> 1200000.0 EUR, ``1.2m`` -> 1200000.0 with no currency.

    Understands currency marks and ISO codes (``currencies.yaml``), units (``k``, ``M``,
    ``MM``, ``bn``, ``Mio.``, ``Mrd.``, ``lakh``, ``crore``, ...), thousands separators of
    any convention and ranges (``$10M-$50M`` gives the midpoint). The amount is as written:
    no exchange rate is applied. Returns ``Converted(None, None)`` for an empty value, and
    value None with the raw value and a reason for anything that is not an amount, names
    two currencies, or names its currency only ambiguously (``10 Mio. kr``).
    """
    if _is_missing(raw):
        return EMPTY
    if _is_number(raw):
        number = float(raw)
        if not math.isfinite(number) or number < 0:
            return Converted(None, _NOT_MONEY, raw=raw)
        return Converted(round(number, 2))
    text = str(raw).strip().lower()
    if not text:
        return EMPTY
    text, currency, error = _currency(text, _default_currency_marks())
    if error is not None:
        return Converted(None, error, raw=raw)
    text = re.sub(r"\s+", " ", _MONEY_NOISE.sub(" ", text)).strip()
    amounts = _parse_range(text, _MULTIPLIERS, dots_group_thousands=False)
    if amounts is None:
        return Converted(None, _NOT_MONEY, raw=raw)
    low, high = amounts
    return Converted(round(float((low + high) / 2), 2), None, currency)


# ---------------------------------------------------------------------------------------
# Headcounts

_NOT_HEADCOUNT = "not a headcount (expected e.g. '51-200', '1,000+' or '5000 employees')"
# The largest employers have about two and a half million people; a bigger number is
# another field (often revenue) in the wrong column.
MAX_HEADCOUNT = 10_000_000


@_cached
def parse_headcount(raw: str | int | float | None) -> Converted:
    """A number of employees as an int, e.g. ``51-200`` -> 125, ``1,000+`` -> 1000.

    A range gives its midpoint rounded down, ``N+`` gives N, ``10k`` gives 10000, words such
    as ``employees`` or ``about`` are ignored, ``1.000`` is a thousand, and
    ``self-employed`` is 1. Returns ``Converted(None, None)`` when empty, and value None
    with the raw value and a reason for anything that is not a headcount from 1 to
    ``MAX_HEADCOUNT``.
    """
    if _is_missing(raw):
        return EMPTY
    if _is_number(raw):
        if not math.isfinite(raw) or not 1 <= raw <= MAX_HEADCOUNT:
            return Converted(None, _NOT_HEADCOUNT, raw=raw)
        return Converted(math.floor(raw))
    text = " ".join(str(raw).lower().split())
    if not text:
        return EMPTY
    if text in _SOLO:
        return Converted(1)
    text = re.sub(r"\s+", " ", _HEADCOUNT_NOISE.sub(" ", text)).strip()
    amounts = _parse_range(text, _HEADCOUNT_MULTIPLIERS, dots_group_thousands=True)
    if amounts is None:
        return Converted(None, _NOT_HEADCOUNT, raw=raw)
    low, high = amounts
    count = int(((low + high) / 2).to_integral_value(rounding=ROUND_FLOOR))
    if not 1 <= count <= MAX_HEADCOUNT:
        return Converted(None, _NOT_HEADCOUNT, raw=raw)
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


# ---------------------------------------------------------------------------------------
# Dates

DEFAULT_DATE_LOCALE = "en_US"
# Locales whose numeric dates put the month first (03/04/2025 is March 4); every other
# locale puts the day first (en_GB, de, fr, es, ...).
MONTH_FIRST_LOCALES = frozenset({"en_US", "en_PH"})

_MONTH_NAMES = (
    "january jan januar janvier enero ene gennaio gen januari janeiro janner",
    "february feb februar fevrier fev febrero febbraio februari fevereiro",
    "march mar marz mrz mars marzo maart marco",
    "april apr avril avr abril abr aprile",
    "may mai mayo maggio mei maio",
    "june jun juni juin junio giugno junho",
    "july jul juli juillet juil julio luglio lug julho",
    "august aug aout agosto ago augustus",
    "september sep sept septembre septiembre settembre set setembro",
    "october oct oktober okt octobre octubre ottobre ott outubro out",
    "november nov novembre noviembre novembro",
    "december dec dezember dez decembre diciembre dic dicembre dezembro",
)
_MONTHS = {name: number for number, names in enumerate(_MONTH_NAMES, 1) for name in names.split()}
# Words a written-out date may carry besides its day, month and year: weekdays, ordinal
# endings ("4th", "1er", "1º"), and "de"/"of" ("4 de marzo de 2025").
_DATE_FILLERS = frozenset(
    word
    for words in (
        "monday mon tuesday tue tues wednesday wed thursday thu thur thurs friday fri",
        "saturday sat sunday sun montag dienstag mittwoch donnerstag freitag samstag sonntag",
        "lundi mardi mercredi jeudi vendredi samedi dimanche lunes martes miercoles jueves",
        "viernes sabado domingo st nd rd th er o de del of the",
    )
    for word in words.split()
)

_ISO_LIKE = re.compile(r"\d{4}-?\d{2}-?\d{2}(?:[T ]\d.*)?", re.IGNORECASE)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{8}")
_YEAR_FIRST = re.compile(r"(\d{4})([./-])(\d{1,2})\2(\d{1,2})")
_NUMERIC = re.compile(r"(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})")
_RFC_2822 = re.compile(r"(?:[a-z]{3},\s*)?\d{1,2} [a-z]{3} \d{4} \d{2}:\d{2}.*", re.IGNORECASE)
_WRITTEN = re.compile(r"[\w\s,./'-]+")
_TIME = re.compile(
    r"(?:\s*,\s*|\s+(?:at\s+)?|(?<=\d)t)(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2})"
    r"(?:[.,](?P<f>\d{1,6}))?)?\s*(?P<ampm>[ap]\.?m\.?)?\s*"
    r"(?P<tz>z|utc|gmt|(?:utc|gmt)?[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_NOT_A_DATE = "not a date (expected e.g. '2025-03-04', '4 March 2025', '03/04/2025' or Unix time)"


@cache
def _locale_reads_month_first(locale: str) -> bool:
    match = re.fullmatch(r"([a-z]{2,3})(?:[_-]([a-z]{2}|\d{3}))?", locale, re.IGNORECASE)
    if match is None:
        raise ValueError(
            f"date locale {locale!r}: expected a language with an optional territory such as "
            "'en_US', 'en_GB' or 'de'"
        )
    language, territory = match[1].lower(), (match[2] or "").upper()
    return f"{language}_{territory}" in MONTH_FIRST_LOCALES


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a moment without an offset is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _two_digit_year(year: str) -> int:
    # POSIX strptime's pivot: 69-99 are 1969-1999, 00-68 are 2000-2068.
    number = int(year)
    if len(year) == 4:
        return number
    return number + (1900 if number >= 69 else 2000)


def _calendar_date(year: int, month: int, day: int) -> date | str:
    """The date, or the reason there is no such date."""
    try:
        return date(year, month, day)
    except ValueError:
        return f"not a calendar date (day {day} of month {month} of {year})"


def _from_unix(number: Decimal, digits: int) -> Converted | None:
    """A Unix time of 9-10 digits (seconds) or 12-13 digits (milliseconds), or None."""
    if digits in (9, 10):
        microseconds = number * 10**6
    elif digits in (12, 13):
        microseconds = number * 10**3
    else:
        return None
    return Converted(_EPOCH + timedelta(microseconds=int(microseconds)))


def _from_number(raw: RawValue, text: str) -> Converted:
    """A date from the digits ``text`` of ``raw``: ``20250304``, Unix seconds or
    milliseconds (``1741046400``, ``1741046400.5``, ``1741046400000``)."""
    whole = text.split(".", 1)[0]
    if len(whole) == 8 and whole == text:
        parsed = _calendar_date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return Converted(parsed) if isinstance(parsed, date) else Converted(None, parsed, raw=raw)
    converted = _from_unix(Decimal(text), len(whole))
    if converted is None:
        return Converted(
            None,
            "not a date: a number must be YYYYMMDD, Unix seconds (10 digits) or "
            "milliseconds (13 digits)",
            raw=raw,
        )
    return converted


def _split_time(text: str) -> tuple[str, time | None, timezone | None, str | None]:
    """``(date part, time of day, offset, error)`` of a value with an optional time."""
    match = _TIME.search(text)
    if match is None:
        return text, None, None, None
    hour, minute, second = int(match["h"]), int(match["m"]), int(match["s"] or 0)
    microsecond = int((match["f"] or "0").ljust(6, "0"))
    if match["ampm"]:
        if not 1 <= hour <= 12:
            return text, None, None, f"not a time of day ({match.group().strip()})"
        hour = hour % 12 + (12 if match["ampm"].lower().startswith("p") else 0)
    offset = None
    tz = (match["tz"] or "").lower().removeprefix("utc").removeprefix("gmt")
    try:
        if tz and tz != "z":
            sign = -1 if tz[0] == "-" else 1
            digits = tz[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:] or 0)
            offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
        moment = time(hour, minute, second, microsecond)
    except ValueError:
        return text, None, None, f"not a time of day ({match.group().strip()})"
    return text[: match.start()], moment, offset, None


def _from_written(text: str) -> tuple[int, int, int] | None:
    """(year, month, day) of ``4 March 2025``, ``March 4th, 2025``, ``04-MAR-25``, ..."""
    if not _WRITTEN.fullmatch(text):
        return None
    tokens = [t for t in re.findall(r"[^\W\d_]+|\d+", fold(text)) if t not in _DATE_FILLERS]
    if len(tokens) != 3:
        return None
    months = [i for i, t in enumerate(tokens) if t in _MONTHS]
    if len(months) != 1 or not all(t.isdigit() for i, t in enumerate(tokens) if i != months[0]):
        return None
    month = _MONTHS[tokens[months[0]]]
    if months[0] == 0:  # March 4, 2025
        day, year = tokens[1], tokens[2]
    elif months[0] == 1 and len(tokens[0]) == 4:  # 2025 March 4
        year, day = tokens[0], tokens[2]
    elif months[0] == 1:  # 4 March 2025
        day, year = tokens[0], tokens[2]
    else:
        return None
    if len(day) > 2 or len(year) not in (2, 4):
        return None
    return _two_digit_year(year), month, int(day)


def _from_numeric(match: re.Match[str], locale: str) -> tuple[int, int, int] | str:
    """(year, month, day) of ``03/04/2025`` or ``4.3.2025``, or the reason it is not one.

    Dotted dates are day-first in every locale that writes them; slashes and dashes follow
    the locale, and a value that contradicts it is not reordered.
    """
    first, separator, second, year = match.groups()
    month_first = separator != "." and _locale_reads_month_first(locale)
    month, day = (int(first), int(second)) if month_first else (int(second), int(first))
    year_number = _two_digit_year(year)
    if month > 12 and isinstance(_calendar_date(year_number, day, month), date):
        layout = "MM/DD/YYYY" if month_first else "DD/MM/YYYY"
        return (
            f"day and month order unclear: the {locale} locale reads {layout} and {month} is "
            "not a month"
        )
    return year_number, month, day


@_cached
def parse_date(raw: RawValue, locale: str = DEFAULT_DATE_LOCALE) -> Converted:
    """A calendar date, or a moment as a UTC datetime, from a value written any common way.

    Understood: ISO 8601 dates and date-times (``2025-03-04``, ``2025-03-04T10:00:00+02:00``,
    ``20250304``); Unix time in seconds (10 digits) or milliseconds (13 digits); numeric
    dates read in ``locale`` (``03/04/2025`` is March 4 for ``en_US`` and the other
    ``MONTH_FIRST_LOCALES``, April 3 for ``en_GB``, ``de``, ``fr``, ``es`` and every other
    locale); dotted dates, always day-first (``4.3.2025``); dates with a month name in
    English, German, French, Spanish, Italian, Dutch or Portuguese (``March 4, 2025``,
    ``4 March 2025``, ``Mar 4 2025``, ``4. März 2025``); RFC 2822 e-mail dates. Any of the
    non-ISO forms may end in a time of day (``03/04/2025 10:30 PM``, ``4 March 2025 10:30
    +01:00``). Two-digit years are 1969-2068.

    Returns a ``date`` for a date alone and a UTC ``datetime`` when a time is given (one
    without an offset is taken as UTC). Returns ``Converted(None, None)`` when empty, and
    value None with the raw value and a reason when the value is not a date, is not a
    calendar date (``31/02/2025``), or contradicts the locale (``13/04/2025`` under
    ``en_US``): the order of day and month is never guessed. Raises ValueError for a
    malformed ``locale``.
    """
    _locale_reads_month_first(locale)
    if _is_missing(raw):
        return EMPTY
    if isinstance(raw, datetime):
        return Converted(_utc(raw))
    if isinstance(raw, date):
        return Converted(raw)
    if isinstance(raw, bool):
        return Converted(None, _NOT_A_DATE, raw=raw)
    if _is_number(raw):
        if not math.isfinite(raw) or raw < 0:
            return Converted(None, _NOT_A_DATE, raw=raw)
        return _from_number(raw, format(Decimal(repr(raw)), "f"))
    text = " ".join(str(raw).split())
    if not text:
        return EMPTY
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return _from_number(raw, text)
    if _ISO_LIKE.fullmatch(text):
        iso = re.sub(r"\s*(?:UTC|GMT)$", "+00:00", text.upper())
        # A value that only looks ISO ("2025-03-04 10:30 PM") is left to the other forms.
        with contextlib.suppress(ValueError, OverflowError):
            if _ISO_DATE.fullmatch(iso):
                return Converted(date.fromisoformat(iso))
            return Converted(_utc(datetime.fromisoformat(iso)))
    if _RFC_2822.fullmatch(text):
        try:
            return Converted(_utc(parsedate_to_datetime(text)))
        except (ValueError, TypeError, OverflowError):
            return Converted(None, _NOT_A_DATE, raw=raw)
    day_part, time_of_day, offset, error = _split_time(text)
    if error is not None:
        return Converted(None, error, raw=raw)
    day_part = day_part.strip()
    if match := _YEAR_FIRST.fullmatch(day_part):
        parts: tuple[int, int, int] | str | None = (int(match[1]), int(match[3]), int(match[4]))
    elif match := _NUMERIC.fullmatch(day_part):
        parts = _from_numeric(match, locale)
    else:
        parts = _from_written(day_part)
    if parts is None:
        return Converted(None, _NOT_A_DATE, raw=raw)
    if isinstance(parts, str):
        return Converted(None, parts, raw=raw)
    day = _calendar_date(*parts)
    if isinstance(day, str):
        return Converted(None, day, raw=raw)
    if time_of_day is None:
        return Converted(day)
    try:
        return Converted(_utc(datetime.combine(day, time_of_day, offset)))
    except OverflowError:  # the first or last day of the calendar, moved by its offset
        return Converted(None, _NOT_A_DATE, raw=raw)


# ---------------------------------------------------------------------------------------
# Yes/no values

_TRUE = frozenset(
    (
        "yes",
        "y",
        "true",
        "t",
        "1",
        "1.0",
        "on",
        "x",
        "checked",
        "subscribed",
        "opted in",
        "opt in",
        "optin",
        "ja",
        "j",
        "oui",
        "si",
        "sim",
    )
)
_FALSE = frozenset(
    (
        "no",
        "n",
        "false",
        "f",
        "0",
        "0.0",
        "off",
        "unchecked",
        "unsubscribed",
        "opted out",
        "opt out",
        "optout",
        "nein",
        "non",
        "nao",
        "nee",
    )
)


@_cached
def parse_bool(raw: str | int | float | bool | None) -> Converted:
    """True or False from a yes/no value in English, German, French, Spanish, Portuguese
    or Dutch: ``yes``/``no``, ``true``/``false``, ``1``/``0``, ``y``/``n``, ``on``/``off``,
    ``opted in``/``opted out``, ``ja``/``nein``, ``oui``/``non``, ``sí``/``no``, ...

    Case, accents, spaces, hyphens and underscores do not matter (``Opted-In``). Returns
    ``Converted(None, None)`` when empty, and value None with the raw value and a reason
    for anything else (``maybe``, ``2``).
    """
    if _is_missing(raw):
        return EMPTY
    if isinstance(raw, bool):
        return Converted(raw)
    if _is_number(raw):
        if raw in (0, 1):
            return Converted(bool(raw))
        return Converted(None, "not a yes/no value (expected 1 or 0)", raw=raw)
    text = " ".join(re.sub(r"[-_]", " ", fold(str(raw))).split())
    if not text:
        return EMPTY
    if text in _TRUE:
        return Converted(True)
    if text in _FALSE:
        return Converted(False)
    return Converted(
        None, "not a yes/no value (expected e.g. yes/no, true/false, 1/0, opted in)", raw=raw
    )


class _ExchangeRatesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    crm_currency: str
    as_of: date
    rates: dict[str, float]


@cache
def exchange_rates(path: Path | None = None) -> _ExchangeRatesFile:
    """The rates in ``config/exchange_rates.yaml`` (or ``path``)."""
    return load_model(path or config_path("exchange_rates.yaml"), _ExchangeRatesFile)


def to_crm_currency(amount: Converted, rates: _ExchangeRatesFile | None = None) -> Converted:
    """A ``parse_money`` result in the CRM's currency.

    An amount with no currency, or already in the CRM's, is returned as it is; one in a
    currency with a rate is multiplied by it and rounded to whole units; one in a currency
    without a rate becomes value None with the reason, its raw value kept.
    """
    rates = rates or exchange_rates()
    if amount.value is None or amount.currency in (None, rates.crm_currency):
        return amount
    rate = rates.rates.get(amount.currency)
    if rate is None:
        return Converted(
            None,
            f"no exchange rate from {amount.currency} to {rates.crm_currency} "
            "(expected in config/exchange_rates.yaml)",
            currency=amount.currency,
            raw=amount.raw if amount.raw is not None else amount.value,
        )
    return Converted(float(round(float(amount.value) * rate)), None, currency=rates.crm_currency)
