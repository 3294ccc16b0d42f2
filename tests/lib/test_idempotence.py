"""Every normalizer and converter is deterministic and idempotent, on realistic and junk input.

Deterministic: the cached function and the function itself give the same result for the same
value. Idempotent: normalizing a normalized value, or converting a converted value (or its
text), gives it back unchanged. The values are drawn from the dictionaries themselves,
written the ways people write them, mixed with junk.
"""

from datetime import UTC, date, datetime, timedelta, timezone

import phonenumbers
import pycountry
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtm_orchestration.lib.config import config_path
from gtm_orchestration.lib.conversion import (
    MONTH_FIRST_LOCALES,
    parse_bool,
    parse_date,
    parse_headcount,
    parse_money,
)
from gtm_orchestration.lib.crm_schema import portal_schema
from gtm_orchestration.lib.normalize import (
    clean_company_name,
    company_match_key,
    domain_from_email,
    domain_from_website,
    identity_email,
    industry_label,
    normalize_country,
    normalize_email,
    normalize_industry,
    normalize_person_name,
    normalize_phone,
    normalize_region,
)

# A few hundred examples per property keep the whole file within seconds.
IDEMPOTENCE = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _dictionary(name: str) -> dict:
    return yaml.safe_load(config_path("dictionaries", name).read_text(encoding="utf-8"))


def _flatten(mapping: dict) -> list[str]:
    return sorted({str(item) for items in mapping.values() for item in items})


COUNTRIES = _dictionary("countries.yaml")
REGIONS = _dictionary("regions.yaml")
INDUSTRIES = _dictionary("industries.yaml")
NAMES = _dictionary("names.yaml")
FREE_MAIL = _dictionary("free_email_domains.yaml")
PROVIDERS = _dictionary("email_providers.yaml")
PLATFORMS = _dictionary("platform_domains.yaml")
CURRENCIES = _dictionary("currencies.yaml")

# --- building blocks ------------------------------------------------------------------

junk = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Co", "Cn")), max_size=24
)
ascii_junk = st.text(alphabet="abcxyzABCXYZ0123456789 .,;:-_/+&'()@<>#?!$€£%*\"\\", max_size=24)


@st.composite
def written(draw: st.DrawFn, values: st.SearchStrategy[str]) -> str:
    """A value as people write it: any case, padded, sometimes with a stray mark."""
    text = draw(values)
    case = draw(st.sampled_from(("as is", "upper", "lower", "title")))
    text = {"upper": text.upper(), "lower": text.lower(), "title": text.title()}.get(case, text)
    before, after = draw(st.sampled_from(("", " ", "  ", "\t"))), draw(st.sampled_from(("", " ")))
    mark = draw(st.sampled_from(("", "", "", ".", ",", "-", "?", "*")))
    return f"{before}{text}{mark}{after}"


def realistic_or_junk(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(written(values), values, junk, ascii_junk, st.none())


# --- strategies -----------------------------------------------------------------------

country_spellings = st.sampled_from(
    sorted(
        {
            spelling
            for country in pycountry.countries
            for spelling in (
                country.alpha_2,
                country.alpha_3,
                country.name,
                getattr(country, "official_name", country.name),
                getattr(country, "common_name", country.name),
            )
        }
        | set(_flatten(COUNTRIES["aliases"]))
        | set(COUNTRIES["display_names"].values())
        | {str(value) for value in COUNTRIES["not_countries"]}
    )
)

region_countries = st.sampled_from(["US", "CA", "us", "DE", "AU", "GB", "BR", "", None])
region_spellings = st.sampled_from(
    sorted(
        {
            spelling
            for country in ("US", "CA", "DE", "AU")
            for sub in pycountry.subdivisions.get(country_code=country)
            for spelling in (sub.code.split("-", 1)[1], sub.name)
        }
        | {
            str(alias)
            for spec in REGIONS["countries"].values()
            for alias in _flatten(spec.get("aliases", {}))
        }
    )
)

industry_options = portal_schema().objects["companies"].properties["industry"].options
industry_spellings = st.sampled_from(
    sorted(
        set(industry_options)
        | {industry_label(option) for option in industry_options}
        | set(_flatten(INDUSTRIES["aliases"]))
    )
)
industry_values = st.one_of(
    industry_spellings,
    st.builds(
        lambda a, sep, b: f"{a}{sep}{b}",
        industry_spellings,
        st.sampled_from((" / ", " & ", ", ", " and ", " | ")),
        industry_spellings,
    ),
    st.builds(
        lambda a, word: f"{a} {word}",
        industry_spellings,
        st.sampled_from(INDUSTRIES["generic_words"]),
    ),
)

legal_forms = st.sampled_from(
    sorted(
        set(NAMES["company"]["legal_suffixes"]) | set(_flatten(NAMES["company"]["legal_suffixes"]))
    )
)
company_words = st.sampled_from(
    ["Acme", "ACME", "acme", "Globex", "Initech", "Umbrella", "Bank of", "America", "The",
     "Home Depot", "AT&T", "E.ON", "O'Reilly", "McDonald's", "Procter & Gamble", "DHL",
     "Müller", "Société", "Générale", "IBM", "eBay", "3M", "&", "and", "Co.", "Holdings",
     "Group", "Widgets", "北京", "Straße"]
)  # fmt: skip
company_names = st.builds(
    lambda words, sep, form: sep.join(words) + form,
    st.lists(company_words, min_size=1, max_size=3),
    st.sampled_from((" ", " ", "  ", ", ")),
    st.one_of(st.just(""), legal_forms.map(lambda f: " " + f), legal_forms.map(lambda f: ", " + f)),
)

person_names = st.builds(
    lambda parts: " ".join(parts),
    st.lists(
        st.sampled_from(
            ["jane", "JOHN", "Mary-Jane", "o'neil", "McDonald", "mcdonald", "DeShawn", "van",
             "der", "Berg", "ludwig", "VON", "Élodie", "ÉLODIE", "李", "J.", "d'Arcy", "ß",
             "da", "Silva", "ı", "İstanbul"]
        ),
        min_size=1,
        max_size=4,
    )
)  # fmt: skip

corporate_domains = st.sampled_from(
    ["acme.com", "acme.co.uk", "globex.de", "initech.io", "umbrella-analytics.io", "acme.com.au",
     "eu.acme.com", "mail.acme.fr", "xn--mnchen-3ya.de", "outlook.acme.com"]
)  # fmt: skip
provider_domains = st.sampled_from(
    sorted(
        {d.replace("*", suffix) for p in PROVIDERS["providers"].values() for d in p["domains"]
         for suffix in ("com", "co.uk", "fr")}
    )
)  # fmt: skip
free_domains = st.sampled_from(sorted(FREE_MAIL["domains"]))
local_parts = st.sampled_from(
    ["jane", "jane.doe", "Jane.Doe", "j.d.o.e", "jane+news", "jane.doe+crm.2024", "+tag",
     "john_smith", "o'neil", "a", "sales", "x.y+z", "JANE"]
)  # fmt: skip
addresses = st.builds(
    lambda local, domain, wrap: wrap.format(f"{local}@{domain}"),
    local_parts,
    st.one_of(corporate_domains, provider_domains, free_domains),
    st.sampled_from(("{}", " {} ", "<{}>", "Jane Doe <{}>", "mailto:{}", '"{}"', "{}.")),
)

websites = st.builds(
    lambda scheme, www, domain, port, path: f"{scheme}{www}{domain}{port}{path}",
    st.sampled_from(("", "http://", "https://", "HTTPS://", "//", "https//", "mailto:info@")),
    st.sampled_from(("", "www.", "WWW.", "blog.")),
    st.one_of(corporate_domains, free_domains, st.sampled_from(PLATFORMS["domains"])),
    st.sampled_from(("", ":8080", ":443")),
    st.sampled_from(("", "/", "/about", "/company/acme", "?utm=x", "#top", "/a/b.html")),
)

phone_regions = st.sampled_from(["US", "GB", "DE", "FR", "IN", "BR", "AU", "JP"])


@st.composite
def phone_numbers(draw: st.DrawFn) -> tuple[str, str | None]:
    region = draw(phone_regions)
    number = phonenumbers.example_number(region)
    style = draw(
        st.sampled_from(
            (
                phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.E164,
                phonenumbers.PhoneNumberFormat.RFC3966,
            )
        )
    )
    text = phonenumbers.format_number(number, style) + draw(st.sampled_from(("", " ext. 12")))
    country = draw(st.one_of(st.just(region), region_countries, st.just("Germany")))
    return text, country


money_numbers = st.one_of(
    st.integers(0, 10**12).map(str),
    st.integers(0, 10**9).map(lambda n: f"{n:,}"),
    st.integers(0, 10**9).map(lambda n: f"{n:,}".replace(",", ".")),
    st.integers(0, 10**9).map(lambda n: f"{n:,}".replace(",", " ")),
    st.decimals(0, 10_000, places=2).map(str),
    st.decimals(0, 10_000, places=1).map(lambda d: str(d).replace(".", ",")),
)
money_units = st.sampled_from(
    ["", "k", "K", "m", "M", "MM", "mn", "Mio.", "Mio", "Mrd.", "bn", "B", "billion", "million",
     "thousand", "lakh", "crore", "Cr"]
)  # fmt: skip
currency_marks = st.sampled_from(
    ["", "$", "€", "£", "¥", "USD", "EUR", "gbp", "CHF", "A$", "C$", "R$", "kr", "Rs"]
    + _flatten(CURRENCIES["symbols"])
)
money_values = st.builds(
    lambda mark, number, unit, before, sep, hedge: (
        f"{hedge}{mark}{sep}{number}{sep}{unit}"
        if before
        else f"{hedge}{number}{sep}{unit}{sep}{mark}"
    ),
    currency_marks,
    money_numbers,
    money_units,
    st.booleans(),
    st.sampled_from(("", " ")),
    st.sampled_from(("", "", "about ", "~", "approx. ")),
)
money_ranges = st.builds(
    lambda a, sep, b: f"{a}{sep}{b}",
    money_values,
    st.sampled_from(("-", " - ", " to ")),
    money_values,
)

headcount_values = st.one_of(
    st.integers(-5, 200_000).map(str),
    st.integers(1, 100_000).map(lambda n: f"{n:,}+"),
    st.builds(lambda a, b: f"{a}-{b}", st.integers(0, 10_000), st.integers(0, 20_000)),
    st.builds(
        lambda n, word: f"{n} {word}",
        st.integers(1, 50_000),
        st.sampled_from(("employees", "Mitarbeiter", "FTEs", "people", "staff")),
    ),
    st.sampled_from(("about 500", "10k", "1.5k", "ca. 250", "Self-employed", "myself only")),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
)

date_locales = st.sampled_from(sorted(MONTH_FIRST_LOCALES) + ["en_GB", "de", "fr_FR", "es-ES"])
calendar_dates = st.dates(date(1970, 1, 2), date(2068, 12, 31))
moments = st.datetimes(
    datetime(1971, 1, 1),
    datetime(2060, 12, 31),
    timezones=st.sampled_from((UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)))),
)
date_formats = st.sampled_from(
    ["%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%y", "%B %d, %Y", "%d %B %Y",
     "%b %d %Y", "%d-%b-%y", "%A, %B %d, %Y", "%Y%m%d", "%Y/%m/%d"]
)  # fmt: skip
time_formats = st.sampled_from(
    ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f%z", "%m/%d/%Y %I:%M %p",
     "%d %B %Y %H:%M %z", "%a, %d %b %Y %H:%M:%S %z"]
)  # fmt: skip
date_values = st.one_of(
    st.builds(lambda d, f: d.strftime(f), calendar_dates, date_formats),
    st.builds(lambda m, f: m.strftime(f), moments, time_formats),
    moments.map(lambda m: m.isoformat()),
    moments.map(lambda m: int(m.timestamp())),
    moments.map(lambda m: str(int(m.timestamp() * 1000))),
    calendar_dates,
    moments,
    st.integers(-10, 10**14),
    st.floats(allow_nan=True, allow_infinity=True),
)

# Text made of the characters dates and amounts are written with, to find the inputs that
# almost parse.
date_junk = st.text(alphabet="0123456789-/.:,+ TZtzAPMapmMarchJanuaryde", max_size=32)
money_junk = st.text(alphabet="0123456789.,' -+$€£kKmMbnBNioMrdUSDEURkr~", max_size=24)

bool_words = ["yes", "no", "true", "false", "1", "0", "y", "n", "on", "off", "opted in",
              "opted out", "ja", "nein", "oui", "non", "sí", "si", "maybe", "N/A"]  # fmt: skip
bool_values = st.one_of(
    written(st.sampled_from(bool_words)), st.booleans(), st.integers(-2, 3), junk, st.none()
)


# --- properties -----------------------------------------------------------------------


@IDEMPOTENCE
@given(realistic_or_junk(addresses))
def test_email(raw):
    email = normalize_email(raw)
    assert normalize_email.__wrapped__(raw) == email
    assert normalize_email(email) == email


@IDEMPOTENCE
@given(realistic_or_junk(addresses))
def test_identity_email(raw):
    key = identity_email(raw)
    assert identity_email.__wrapped__(raw) == key
    assert identity_email(key) == key
    assert identity_email(normalize_email(raw)) == key


@IDEMPOTENCE
@given(realistic_or_junk(websites))
def test_domain_from_website(raw):
    domain = domain_from_website(raw)
    assert domain_from_website.__wrapped__(raw) == domain
    if domain is not None:
        assert domain_from_website(domain) == domain
        assert domain == domain.lower()


@IDEMPOTENCE
@given(realistic_or_junk(addresses))
def test_domain_from_email(raw):
    domain = domain_from_email(raw)
    assert domain_from_email.__wrapped__(raw) == domain
    if domain is not None:
        assert domain_from_email(f"jane@{domain}") == domain
        assert domain_from_website(domain) == domain


@IDEMPOTENCE
@given(realistic_or_junk(country_spellings))
def test_country(raw):
    found = normalize_country(raw)
    assert normalize_country.__wrapped__(raw) == found
    if found is not None:
        name, code = found
        assert normalize_country(name) == found
        assert normalize_country(code) == found or code == "NA"


@IDEMPOTENCE
@given(realistic_or_junk(region_spellings), region_countries)
def test_region(raw, country):
    region = normalize_region(raw, country)
    assert normalize_region.__wrapped__(raw, country) == region
    if region is not None:
        assert normalize_region(region, country) == region


@IDEMPOTENCE
@given(realistic_or_junk(industry_values))
def test_industry(raw):
    industry = normalize_industry(raw)
    assert normalize_industry.__wrapped__(raw) == industry
    if industry is not None:
        assert industry in industry_options
        assert normalize_industry(industry) == industry
        assert normalize_industry(industry_label(industry)) == industry


@IDEMPOTENCE
@given(realistic_or_junk(company_names))
def test_company_name(raw):
    name = clean_company_name(raw)
    key = company_match_key(raw)
    assert clean_company_name.__wrapped__(raw) == name
    assert company_match_key.__wrapped__(raw) == key
    assert clean_company_name(name) == name
    assert company_match_key(key) == key
    assert company_match_key(name) == key  # tidying a name keeps its identity


@IDEMPOTENCE
@given(realistic_or_junk(person_names))
def test_person_name(raw):
    name = normalize_person_name(raw)
    assert normalize_person_name.__wrapped__(raw) == name
    assert normalize_person_name(name) == name


@IDEMPOTENCE
@given(st.one_of(phone_numbers(), st.tuples(realistic_or_junk(ascii_junk), region_countries)))
def test_phone(number_and_country):
    raw, country = number_and_country
    converted = normalize_phone(raw, country)
    assert normalize_phone.__wrapped__(raw, country) == converted
    if converted.value is not None:
        assert normalize_phone(converted.value, country) == converted
        assert normalize_phone(converted.value, None) == converted
    elif converted.error is not None:
        assert converted.raw == raw


@IDEMPOTENCE
@given(
    st.one_of(realistic_or_junk(money_values), money_ranges, money_junk, st.floats(), st.integers())
)
def test_money(raw):
    converted = parse_money(raw)
    assert parse_money.__wrapped__(raw) == converted
    if converted.value is not None:
        amount = converted.value
        assert parse_money(amount).value == amount
        assert parse_money(f"{amount:f}").value == amount
        assert parse_money(f"{amount:f} {converted.currency or ''}") == converted
    elif converted.error is not None:
        assert converted.raw == raw


@IDEMPOTENCE
@given(st.one_of(realistic_or_junk(headcount_values.map(str)), headcount_values))
def test_headcount(raw):
    converted = parse_headcount(raw)
    assert parse_headcount.__wrapped__(raw) == converted
    if converted.value is not None:
        assert converted.value >= 1
        assert parse_headcount(converted.value) == converted
        assert parse_headcount(str(converted.value)) == converted
    elif converted.error is not None:
        assert converted.raw == raw


@IDEMPOTENCE
@given(st.one_of(date_values, realistic_or_junk(date_values.map(str)), date_junk), date_locales)
def test_date(raw, locale):
    converted = parse_date(raw, locale)
    assert parse_date.__wrapped__(raw, locale) == converted
    if converted.value is not None:
        value = converted.value
        if isinstance(value, datetime):
            assert value.tzinfo is UTC
        assert parse_date(value, locale) == converted
        assert parse_date(value.isoformat(), locale) == converted
    elif converted.error is not None:
        assert converted.raw == raw


@IDEMPOTENCE
@given(bool_values)
def test_bool(raw):
    converted = parse_bool(raw)
    assert parse_bool.__wrapped__(raw) == converted
    if converted.value is not None:
        assert parse_bool(converted.value) == converted
        assert parse_bool(str(converted.value)) == converted
    elif converted.error is not None:
        assert converted.raw == raw
