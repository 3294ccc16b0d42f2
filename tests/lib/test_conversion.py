import pytest

from gtm_orchestration.lib.conversion import (
    Converted,
    headcount_band,
    parse_headcount,
    parse_money,
)
from gtm_orchestration.lib.crm_schema import portal_schema


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1.2M", 1_200_000.0),
        ("1.2m", 1_200_000.0),
        ("1,200,000", 1_200_000.0),
        ("USD 1,200,000", 1_200_000.0),
        ("USD1,200,000", 1_200_000.0),
        ("€900k", 900_000.0),
        ("1.5 billion", 1_500_000_000.0),
        ("$250K", 250_000.0),
        ("2bn", 2_000_000_000.0),
        ("$5MM", 5_000_000.0),
        ("12345", 12_345.0),
        ("1.15M", 1_150_000.0),
        ("1 200 000", 1_200_000.0),
        ("€1.200.000,50", 1_200_000.5),
        ("1,5m", 1_500_000.0),
        ("$10M-$50M", 30_000_000.0),
        ("10-50M", 30_000_000.0),
        ("2 to 10 million", 6_000_000.0),
        ("$10M+", 10_000_000.0),
        ("about $3m", 3_000_000.0),
        ("  $ 750,000  ", 750_000.0),
        (2_500_000, 2_500_000.0),
    ],
)
def test_parse_money(raw, expected):
    assert parse_money(raw) == Converted(expected, None)


@pytest.mark.parametrize("raw", ["N/A", "lots", "-", "-5000", "ten million", "$1M-5", "1e6"])
def test_parse_money_rejects_garbage(raw):
    assert parse_money(raw) == Converted(None, "not a money amount")


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_parse_money_empty(raw):
    assert parse_money(raw) == Converted(None, None)


@pytest.mark.parametrize("raw", ["$1.2M", "€900k", "1,200,000", "10-50M"])
def test_parse_money_is_idempotent(raw):
    once = parse_money(raw).value
    assert parse_money(once).value == once
    assert parse_money(str(once)).value == once


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
        (340, 340),
    ],
)
def test_parse_headcount(raw, expected):
    assert parse_headcount(raw) == Converted(expected, None)


@pytest.mark.parametrize("raw", ["N/A", "lots", "0", "-3", "a few", "<10"])
def test_parse_headcount_rejects_garbage(raw):
    assert parse_headcount(raw) == Converted(None, "not a headcount")


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
