from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.conversion import (
    Converted,
    headcount_band,
    load_currency_marks,
    parse_bool,
    parse_date,
    parse_headcount,
    parse_money,
    to_crm_currency,
)
from gtm_orchestration.lib.crm_schema import portal_schema

NOT_MONEY = "not a money amount (expected e.g. '$1.2M', '€900k' or '1.200.000 €')"
NOT_HEADCOUNT = "not a headcount (expected e.g. '51-200', '1,000+' or '5000 employees')"
NOT_A_DATE = "not a date (expected e.g. '2025-03-04', '4 March 2025', '03/04/2025' or Unix time)"

# --- money ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "currency"),
    [
        ("$1.2M", 1_200_000.0, "USD"),
        ("1.2m", 1_200_000.0, None),
        ("1,200,000", 1_200_000.0, None),
        ("USD 1,200,000", 1_200_000.0, "USD"),
        ("USD1,200,000", 1_200_000.0, "USD"),
        ("€900k", 900_000.0, "EUR"),
        ("1.200.000 €", 1_200_000.0, "EUR"),
        ("£2.5 million", 2_500_000.0, "GBP"),
        ("1,2 Mio. €", 1_200_000.0, "EUR"),
        ("1.5 billion", 1_500_000_000.0, None),
        ("$250K", 250_000.0, "USD"),
        ("2bn", 2_000_000_000.0, None),
        ("$5MM", 5_000_000.0, "USD"),
        ("12345", 12_345.0, None),
        ("1.15M", 1_150_000.0, None),
        ("1 200 000", 1_200_000.0, None),
        ("€1.200.000,50", 1_200_000.5, "EUR"),
        ("€1.200", 1_200.0, "EUR"),  # a dot and three digits without a unit group thousands
        ("1,5m", 1_500_000.0, None),
        ("$10M-$50M", 30_000_000.0, "USD"),
        ("10-50M", 30_000_000.0, None),
        ("2 to 10 million", 6_000_000.0, None),
        ("$10M+", 10_000_000.0, "USD"),
        ("about $3m", 3_000_000.0, "USD"),
        ("  $ 750,000  ", 750_000.0, "USD"),
        ("$1.2 M USD", 1_200_000.0, "USD"),
        ("$1M CAD", 1_000_000.0, "CAD"),  # the code says which dollar
        ("C$ 3M", 3_000_000.0, "CAD"),
        ("A$5m", 5_000_000.0, "AUD"),
        ("R$ 10 mi", 10_000_000.0, "BRL"),
        ("CHF 2 Mio", 2_000_000.0, "CHF"),
        ("1'200'000 CHF", 1_200_000.0, "CHF"),
        ("1,5 Mrd. €", 1_500_000_000.0, "EUR"),
        ("2 Md€", 2_000_000_000.0, "EUR"),
        ("¥100m", 100_000_000.0, "JPY"),
        ("RMB 50 mln", 50_000_000.0, "CNY"),
        ("₹50 Cr", 500_000_000.0, "INR"),
        ("SEK 10 Mio kr", 10_000_000.0, "SEK"),
        ("1.2m euros", 1_200_000.0, "EUR"),
        ("$10M/yr", 10_000_000.0, "USD"),
        ("approx. 3m dollars per year", 3_000_000.0, "USD"),
        (2_500_000, 2_500_000.0, None),
    ],
)
def test_parse_money(raw, expected, currency):
    assert parse_money(raw) == Converted(expected, None, currency)


@pytest.mark.parametrize("raw", ["N/A", "lots", "-", "-5000", "ten million", "$1M-5", "1e6", "$"])
def test_parse_money_rejects_garbage(raw):
    assert parse_money(raw) == Converted(None, NOT_MONEY, raw=raw)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("$1M EUR", "two currencies in one amount (EUR, USD)"),
        ("€10M - £20M", "two currencies in one amount (EUR, GBP)"),
        ("10 Mio. kr", "ambiguous currency 'kr' (expected a code: SEK, NOK, DKK, ISK)"),
        ("Rs 50 crore", "ambiguous currency 'rs' (expected a code: INR, PKR, LKR, NPR)"),
    ],
)
def test_parse_money_does_not_guess_the_currency(raw, error):
    assert parse_money(raw) == Converted(None, error, raw=raw)


def test_currency_marks_must_name_iso_currencies(tmp_path):
    path = tmp_path / "currencies.yaml"
    path.write_text("version: 1\nsymbols:\n  XYZ: [zz]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"symbols\.XYZ: expected an ISO 4217 currency code"):
        load_currency_marks(path)


def test_currency_marks_name_one_currency_each(tmp_path):
    path = tmp_path / "currencies.yaml"
    path.write_text("version: 1\nsymbols:\n  EUR: [€]\nassumed:\n  €: [EUR, USD]\n")
    with pytest.raises(ConfigError, match=r"'€' is already a mark of symbols\.EUR"):
        load_currency_marks(path)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_parse_money_empty(raw):
    assert parse_money(raw) == Converted(None, None)


@pytest.mark.parametrize("raw", ["$1.2M", "€900k", "1,200,000", "10-50M", "1,2 Mio. €"])
def test_parse_money_is_idempotent(raw):
    once = parse_money(raw)
    assert parse_money(once.value).value == once.value
    assert parse_money(str(once.value)).value == once.value
    assert parse_money(f"{once.value} {once.currency or ''}") == once


# --- headcounts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("51-200", 125),
        ("1,000+", 1000),
        ("10k", 10_000),
        ("500", 500),
        ("11 - 50", 30),
        ("5000+ employees", 5000),
        ("1-10", 5),
        ("10,001+", 10_001),
        ("1001-5000 employees", 3000),
        ("2 to 10", 6),
        ("1.5k", 1500),
        ("1.000", 1000),
        ("~200 FTEs", 200),
        ("12.5", 12),
        ("about 500", 500),
        ("5000 employees", 5000),
        ("ca. 250 Mitarbeiter", 250),
        ("10k+", 10_000),
        ("5K-10K", 7500),
        ("Self-employed", 1),
        ("Myself Only", 1),
        (340, 340),
    ],
)
def test_parse_headcount(raw, expected):
    assert parse_headcount(raw) == Converted(expected, None)


@pytest.mark.parametrize("raw", ["N/A", "lots", "0", "-3", "a few", "<10", 0])
def test_parse_headcount_rejects_garbage(raw):
    assert parse_headcount(raw) == Converted(None, NOT_HEADCOUNT, raw=raw)


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_parse_headcount_empty(raw):
    assert parse_headcount(raw) == Converted(None, None)


@pytest.mark.parametrize("raw", ["51-200", "10k", "5000+ employees"])
def test_parse_headcount_is_idempotent(raw):
    once = parse_headcount(raw).value
    assert parse_headcount(once).value == once
    assert parse_headcount(str(once)).value == once


@pytest.mark.parametrize(
    ("n", "band"),
    [
        (1, "1-5"),
        (4, "1-5"),
        (5, "5-25"),  # a boundary belongs to the band it starts
        (24, "5-25"),
        (25, "25-50"),
        (99, "50-100"),
        (125, "100-500"),
        (999, "500-1000"),
        (1000, "1000-5000"),
        (9999, "5000-10000"),
        (10_000, "10000+"),
        (250_000, "10000+"),
        (None, None),
        (0, None),
    ],
)
def test_headcount_band(n, band):
    assert headcount_band(n) == band


def test_headcount_bands_are_crm_options():
    options = portal_schema().objects["contacts"].properties["numemployees"].options
    bands = {headcount_band(n) for n in range(1, 20_001)}
    assert bands == set(options)


# --- dates ----------------------------------------------------------------------------


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-03-04", date(2025, 3, 4)),
        ("20250304", date(2025, 3, 4)),
        ("2025/3/4", date(2025, 3, 4)),
        ("2025-03-04T10:20:30Z", _utc(2025, 3, 4, 10, 20, 30)),
        ("2025-03-04T10:20:30+02:00", _utc(2025, 3, 4, 8, 20, 30)),
        ("2025-03-04T01:00:00-05:00", _utc(2025, 3, 4, 6, 0, 0)),
        ("2025-03-04 10:20:30.250", _utc(2025, 3, 4, 10, 20, 30, 250_000)),
        ("2025-03-04 10:20:30 UTC", _utc(2025, 3, 4, 10, 20, 30)),
        ("2025-03-04 10:30 PM", _utc(2025, 3, 4, 22, 30)),
        (1741046400, _utc(2025, 3, 4)),
        ("1741046400", _utc(2025, 3, 4)),
        (1741046400123, _utc(2025, 3, 4, 0, 0, 0, 123_000)),
        ("1741046400123", _utc(2025, 3, 4, 0, 0, 0, 123_000)),
        (1741046400.5, _utc(2025, 3, 4, 0, 0, 0, 500_000)),
        ("03/04/2025", date(2025, 3, 4)),  # month first in the default en_US
        ("3/4/25", date(2025, 3, 4)),
        ("12-31-2024", date(2024, 12, 31)),
        ("4.3.2025", date(2025, 3, 4)),  # dotted dates are day first everywhere
        ("04.03.25", date(2025, 3, 4)),
        ("March 4, 2025", date(2025, 3, 4)),
        ("4 March 2025", date(2025, 3, 4)),
        ("Mar 4 2025", date(2025, 3, 4)),
        ("Mar. 4, 2025", date(2025, 3, 4)),
        ("Tuesday, March 4th, 2025", date(2025, 3, 4)),
        ("04-MAR-25", date(2025, 3, 4)),
        ("4. März 2025", date(2025, 3, 4)),
        ("4 de marzo de 2025", date(2025, 3, 4)),
        ("1er mars 2025", date(2025, 3, 1)),
        ("03/04/2025 10:30 PM", _utc(2025, 3, 4, 22, 30)),
        ("03/04/2025 22:30:15", _utc(2025, 3, 4, 22, 30, 15)),
        ("4 March 2025 10:30 +01:00", _utc(2025, 3, 4, 9, 30)),
        ("Tue, 04 Mar 2025 10:20:30 +0000", _utc(2025, 3, 4, 10, 20, 30)),
        (date(2025, 3, 4), date(2025, 3, 4)),
        (datetime(2025, 3, 4, 10, 0), _utc(2025, 3, 4, 10, 0)),
        (
            datetime(2025, 3, 4, 10, 0, tzinfo=timezone(timedelta(hours=1))),
            _utc(2025, 3, 4, 9, 0),
        ),
    ],
)
def test_parse_date(raw, expected):
    converted = parse_date(raw)
    assert converted == Converted(expected)
    assert type(converted.value) is type(expected)


@pytest.mark.parametrize(
    ("raw", "locale", "expected"),
    [
        ("03/04/2025", "en_US", date(2025, 3, 4)),
        ("03/04/2025", "en_GB", date(2025, 4, 3)),
        ("03/04/2025", "de", date(2025, 4, 3)),
        ("03/04/2025", "fr_FR", date(2025, 4, 3)),
        ("03/04/2025", "es-ES", date(2025, 4, 3)),
        ("13/04/2025", "en_GB", date(2025, 4, 13)),
        ("4.3.2025", "en_US", date(2025, 3, 4)),
        ("March 4, 2025", "de", date(2025, 3, 4)),
    ],
)
def test_parse_date_reads_numeric_dates_in_the_locale(raw, locale, expected):
    assert parse_date(raw, locale) == Converted(expected)


@pytest.mark.parametrize(
    ("raw", "locale", "error"),
    [
        (
            "13/04/2025",
            "en_US",
            "day and month order unclear: the en_US locale reads MM/DD/YYYY and 13 is not a month",
        ),
        (
            "04/13/2025",
            "en_GB",
            "day and month order unclear: the en_GB locale reads DD/MM/YYYY and 13 is not a month",
        ),
        ("31/02/2025", "en_GB", "not a calendar date (day 31 of month 2 of 2025)"),
        ("2025-02-30", "en_US", "not a calendar date (day 30 of month 2 of 2025)"),
        ("03/04/2025 13:00 PM", "en_US", "not a time of day (13:00 PM)"),
        (
            "12345",
            "en_US",
            "not a date: a number must be YYYYMMDD, Unix seconds (10 digits) or milliseconds "
            "(13 digits)",
        ),
        ("March 2025", "en_US", NOT_A_DATE),
        ("next Tuesday", "en_US", NOT_A_DATE),
        ("N/A", "en_US", NOT_A_DATE),
        (True, "en_US", NOT_A_DATE),
    ],
)
def test_parse_date_rejects_what_it_cannot_read_for_sure(raw, locale, error):
    assert parse_date(raw, locale) == Converted(None, error, raw=raw)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_parse_date_empty(raw):
    assert parse_date(raw) == Converted(None, None)


@pytest.mark.parametrize("locale", ["english", "en_USA", "", "en US"])
def test_parse_date_rejects_a_malformed_locale(locale):
    with pytest.raises(ValueError, match="date locale"):
        parse_date("2025-03-04", locale)


@pytest.mark.parametrize(
    "raw", ["2025-03-04T10:20:30+02:00", "4 March 2025", "1741046400123", "03/04/2025 10:30 PM"]
)
def test_parse_date_is_idempotent(raw):
    once = parse_date(raw).value
    assert parse_date(once).value == once
    assert parse_date(once.isoformat()).value == once


# --- yes/no ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["yes", "Yes", " YES ", "y", "true", "TRUE", "t", "1", 1, True, "on", "Opted In",
     "opted-in", "opt_in", "ja", "Ja", "oui", "sí", "Si", "x", "checked"],
)  # fmt: skip
def test_parse_bool_true(raw):
    assert parse_bool(raw) == Converted(True)


@pytest.mark.parametrize(
    "raw",
    ["no", "NO", "n", "false", "False", "f", "0", 0, False, "off", "Opted Out", "opt-out",
     "nein", "non", "No ", "unchecked"],
)  # fmt: skip
def test_parse_bool_false(raw):
    assert parse_bool(raw) == Converted(False)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("maybe", "not a yes/no value (expected e.g. yes/no, true/false, 1/0, opted in)"),
        ("N/A", "not a yes/no value (expected e.g. yes/no, true/false, 1/0, opted in)"),
        (2, "not a yes/no value (expected 1 or 0)"),
    ],
)
def test_parse_bool_rejects(raw, error):
    assert parse_bool(raw) == Converted(None, error, raw=raw)


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_parse_bool_empty(raw):
    assert parse_bool(raw) == Converted(None, None)


@pytest.mark.parametrize(
    ("raw", "usd"),
    [
        ("$1.2M", 1_200_000.0),
        ("1.2m", 1_200_000.0),  # no currency of its own: the CRM's
        ("USD 1,200,000", 1_200_000.0),
        ("€900k", 972_000.0),
        ("£2.5 million", 3_175_000.0),
    ],
)
def test_amounts_reach_the_crm_in_its_currency(raw: str, usd: float) -> None:
    converted = to_crm_currency(parse_money(raw))
    assert (converted.value, converted.error) == (usd, None)


def test_an_amount_in_a_currency_without_a_rate_is_kept_raw_and_flagged() -> None:
    converted = to_crm_currency(parse_money("250k VND"))
    assert converted.value is None
    assert converted.raw == 250_000.0
    assert "no exchange rate from VND to USD" in converted.error
