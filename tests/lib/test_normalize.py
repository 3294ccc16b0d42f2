import pycountry
import pytest

from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.conversion import Converted
from gtm_orchestration.lib.crm_schema import portal_schema
from gtm_orchestration.lib.normalize import (
    clean_company_name,
    company_match_key,
    domain_from_email,
    domain_from_website,
    industry_label,
    is_free_email_domain,
    is_valid_email,
    load_country_dictionary,
    load_industry_dictionary,
    load_region_dictionary,
    normalize_country,
    normalize_email,
    normalize_industry,
    normalize_person_name,
    normalize_phone,
    normalize_region,
    normalize_us_state,
)

# --- e-mail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jane@acme.com", "jane@acme.com"),
        ("  Jane.Doe@ACME.com ", "jane.doe@acme.com"),
        ("mailto:JANE@ACME.COM", "jane@acme.com"),
        ("<jane@acme.com>", "jane@acme.com"),
        ("Jane Doe <Jane@Acme.COM>", "jane@acme.com"),
        ("<mailto:jane@acme.com?subject=Demo>", "jane@acme.com"),
        ('"jane@acme.com"', "jane@acme.com"),
        ("jane@acme.com.", "jane@acme.com"),
        ("", None),
        ("   ", None),
        ("<>", None),
        (None, None),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected
    assert normalize_email(expected) == expected


@pytest.mark.parametrize(
    "email",
    ["jane@acme.com", "jane.doe+demo@acme.co.uk", "j_o'neil@sub.acme.io", "x@acme.museum"],
)
def test_valid_emails(email):
    assert is_valid_email(email)


@pytest.mark.parametrize(
    "email",
    [
        "",
        "jane",
        "jane@acme",
        "jane@@acme.com",
        "jane@acme@com.com",
        "jane doe@acme.com",
        ".jane@acme.com",
        "jane..doe@acme.com",
        "jane@-acme.com",
        "jane@acme..com",
        "jane@acme.c",
        "jane@acme.con",  # no such public suffix
        "jane@co.uk",  # a suffix, not a domain
        "jane@127.0.0.1",
        "n/a",
    ],
)
def test_invalid_emails(email):
    assert not is_valid_email(email)


# --- domains --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.acme.co.uk/about", "acme.co.uk"),
        ("ACME.com", "acme.com"),
        ("www.acme.com/", "acme.com"),
        ("http://blog.acme.io", "acme.io"),
        ("acme.com:8080/pricing?ref=x", "acme.com"),
        ("https://user:secret@www.acme.com", "acme.com"),
        ("//acme.com", "acme.com"),
        ("www.acme.com, www.acme.de", "acme.com"),
        ("acme.com.au", "acme.com.au"),
        ("192.168.0.1", None),
        ("localhost", None),
        ("acme", None),
        ("N/A", None),
        ("", None),
        (None, None),
    ],
)
def test_domain_from_website(raw, expected):
    assert domain_from_website(raw) == expected
    assert domain_from_website(expected) == expected


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("jane@acme.com", "acme.com"),
        ("JANE@ACME.COM", "acme.com"),
        ("jane@eu.acme.co.uk", "acme.co.uk"),
        ("jane@gmail.com", None),
        ("jane@googlemail.com", None),
        ("jane@yahoo.co.uk", None),
        ("jane@mail.yahoo.com", None),
        ("jane@hotmail.fr", None),
        ("jane@outlook.com", None),
        ("jane@icloud.com", None),
        ("jane@proton.me", None),
        ("jane@gmx.net", None),
        ("jane@web.de", None),
        ("jane@mail.ru", None),
        ("jane@yandex.ru", None),
        ("jane@qq.com", None),
        ("jane@163.com", None),
        ("not an address", None),
        ("", None),
        (None, None),
    ],
)
def test_domain_from_email(email, expected):
    assert domain_from_email(email) == expected


@pytest.mark.parametrize(
    ("domain", "free"),
    [
        ("gmail.com", True),
        ("yahoo.fr", True),
        ("GMX.DE", True),
        ("acme.com", False),
        ("live.com", True),
        ("yahooligans-consulting.com", False),
    ],
)
def test_is_free_email_domain(domain, free):
    assert is_free_email_domain(domain) is free


# --- countries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # the normalization dictionary's own example
        ("United States", ("United States", "US")),
        ("US", ("United States", "US")),
        ("USA", ("United States", "US")),
        ("U.S.A.", ("United States", "US")),
        ("U.S.", ("United States", "US")),
        ("united states of america", ("United States", "US")),
        ("  usa ", ("United States", "US")),
        ("UK", ("United Kingdom", "GB")),
        ("Great Britain", ("United Kingdom", "GB")),
        ("England", ("United Kingdom", "GB")),
        ("GBR", ("United Kingdom", "GB")),
        ("Deutschland", ("Germany", "DE")),
        ("DE", ("Germany", "DE")),
        ("DEU", ("Germany", "DE")),
        ("germany", ("Germany", "DE")),
        ("South Korea", ("South Korea", "KR")),
        ("Korea, Republic of", ("South Korea", "KR")),
        ("KR", ("South Korea", "KR")),
        ("Russian Federation", ("Russia", "RU")),
        ("Viet Nam", ("Vietnam", "VN")),
        ("Iran, Islamic Republic of", ("Iran", "IR")),
        ("Czech Republic", ("Czechia", "CZ")),
        ("Taiwan, Province of China", ("Taiwan", "TW")),
        ("Türkiye", ("Turkey", "TR")),
        ("España", ("Spain", "ES")),
        ("Schweiz", ("Switzerland", "CH")),
        ("Suisse", ("Switzerland", "CH")),
        ("Nederland", ("Netherlands", "NL")),
        ("Holland", ("Netherlands", "NL")),
        ("The Netherlands", ("Netherlands", "NL")),
        ("Brasil", ("Brazil", "BR")),
        ("México", ("Mexico", "MX")),
        ("Mexico", ("Mexico", "MX")),
        ("日本", ("Japan", "JP")),
        ("Cote d'Ivoire", ("Côte d'Ivoire", "CI")),
        ("UAE", ("United Arab Emirates", "AE")),
        ("Namibia", ("Namibia", "NA")),
    ],
)
def test_normalize_country(raw, expected):
    assert normalize_country(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "N/A",
        "NA",
        "none",
        "Other",
        "Europe",
        "EMEA",
        "-",
        "unknown",
        "Global",
        "America",
        "North America",
        "LATAM",
        "APAC",
        "",
        "   ",
        None,
        "Atlantis",
        "?",
    ],
)
def test_normalize_country_rejects_non_countries(raw):
    assert normalize_country(raw) is None


def test_every_iso_country_is_known_and_stable():
    for country in pycountry.countries:
        for spelling in (country.alpha_3, country.name):
            name, code = normalize_country(spelling)
            assert code == country.alpha_2
            assert normalize_country(name) == (name, code)


def test_country_dictionary_rejects_bad_codes(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text("version: 1\naliases:\n  XX: [Freedonia]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_country_dictionary(path)
    assert str(path) in str(error.value)
    assert "aliases.XX" in str(error.value)
    assert "alpha-2" in str(error.value)


def test_country_dictionary_rejects_an_alias_of_two_countries(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text("version: 1\naliases:\n  AT: [Alpenland]\n  CH: [Alpenland]\n")
    with pytest.raises(ConfigError, match=r"aliases\.CH: 'Alpenland' is already an alias of AT"):
        load_country_dictionary(path)


def test_custom_country_dictionary(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text("version: 1\ndisplay_names:\n  TR: Türkiye\nnot_countries: [DE]\n")
    custom = load_country_dictionary(path)
    assert normalize_country("TR", custom) == ("Türkiye", "TR")
    assert normalize_country("Türkiye", custom) == ("Türkiye", "TR")
    assert normalize_country("DE", custom) is None


# --- states and regions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CA", "California"),
        ("Calif.", "California"),
        ("california", "California"),
        ("CALIFORNIA", "California"),
        ("N.Y.", "New York"),
        ("ny", "New York"),
        ("Washington DC", "District of Columbia"),
        ("Washington, D.C.", "District of Columbia"),
        ("DC", "District of Columbia"),
        ("Washington", "Washington"),
        ("Mass.", "Massachusetts"),
        ("PR", "Puerto Rico"),
        ("USVI", "U.S. Virgin Islands"),
        ("UM", None),
        ("Ontario", None),
        ("Narnia", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_us_state(raw, expected):
    assert normalize_us_state(raw) == expected
    assert normalize_us_state(expected) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("CA", "US", "California"),
        ("tx", "us", "Texas"),
        ("Narnia", "US", None),
        ("ON", "CA", "Ontario"),
        ("Ont.", "CA", "Ontario"),
        ("Québec", "CA", "Quebec"),
        ("BC", "CA", "British Columbia"),
        ("bavaria", "DE", "Bavaria"),
        ("NEW SOUTH WALES", "AU", "New South Wales"),
        ("NSW", "AU", "NSW"),
        ("RIO DE JANEIRO", "BR", "Rio de Janeiro"),
        ("Île-de-France", "FR", "Île-de-France"),
        ("  Greater   London ", "GB", "Greater London"),
        ("california", None, "California"),
        ("", "US", None),
        (None, "DE", None),
    ],
)
def test_normalize_region(raw, country, expected):
    assert normalize_region(raw, country) == expected
    assert normalize_region(expected, country) == expected


def test_region_dictionary_rejects_unknown_subdivisions(tmp_path):
    path = tmp_path / "regions.yaml"
    path.write_text(
        "version: 1\ncountries:\n  US:\n    subdivision_types: [State]\n"
        "    aliases:\n      ZZ: [Zedland]\n"
    )
    with pytest.raises(ConfigError, match=r"countries\.US\.aliases\.ZZ: expected a subdivision"):
        load_region_dictionary(path)


# --- industries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Software", "COMPUTER_SOFTWARE"),
        ("SaaS", "COMPUTER_SOFTWARE"),
        ("computer software", "COMPUTER_SOFTWARE"),
        ("COMPUTER_SOFTWARE", "COMPUTER_SOFTWARE"),
        ("Fintech", "FINANCIAL_SERVICES"),
        ("Financial Services", "FINANCIAL_SERVICES"),
        ("Healthcare", "HOSPITAL_HEALTH_CARE"),
        ("Hospital & Health Care", "HOSPITAL_HEALTH_CARE"),
        ("Marketing", "MARKETING_AND_ADVERTISING"),
        ("Advertising", "MARKETING_AND_ADVERTISING"),
        ("Marketing and Advertising", "MARKETING_AND_ADVERTISING"),
        ("IT Services", "INFORMATION_TECHNOLOGY_AND_SERVICES"),
        ("E-commerce", "RETAIL"),
        ("Retail", "RETAIL"),
        ("Retail / E-commerce", "RETAIL"),
        ("Manufacturing", "MECHANICAL_OR_INDUSTRIAL_ENGINEERING"),
        ("Education", "EDUCATION_MANAGEMENT"),
        ("Banking", "BANKING"),
        ("Insurance", "INSURANCE"),
        ("Telecom", "TELECOMMUNICATIONS"),
        ("Biotech", "BIOTECHNOLOGY"),
        ("Pharma", "PHARMACEUTICALS"),
        ("Consulting", "MANAGEMENT_CONSULTING"),
        ("Real Estate", "REAL_ESTATE"),
        ("Logistics", "LOGISTICS_AND_SUPPLY_CHAIN"),
        ("Media", "ONLINE_MEDIA"),
        ("Non-profit", "NON_PROFIT_ORGANIZATION_MANAGEMENT"),
        ("Government", "GOVERNMENT_ADMINISTRATION"),
        ("Energy", "OIL_ENERGY"),
        ("Oil & Energy", "OIL_ENERGY"),
        ("Automotive", "AUTOMOTIVE"),
        ("Cybersecurity", "COMPUTER_NETWORK_SECURITY"),
        ("e-learning", "E_LEARNING"),
        ("widgets", None),
        ("N/A", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_industry(raw, expected):
    assert normalize_industry(raw) == expected
    assert normalize_industry(expected) == expected


def test_every_industry_option_and_label_maps_to_itself():
    for option in portal_schema().objects["companies"].properties["industry"].options:
        assert normalize_industry(option) == option
        assert normalize_industry(industry_label(option)) == option


def test_industry_labels():
    assert industry_label("HOSPITAL_HEALTH_CARE") == "Hospital & Health Care"
    assert industry_label("COMPUTER_SOFTWARE") == "Computer Software"
    assert industry_label("MECHANICAL_OR_INDUSTRIAL_ENGINEERING") == (
        "Mechanical or Industrial Engineering"
    )


def test_industry_dictionary_rejects_values_outside_the_crm_picklist(tmp_path):
    path = tmp_path / "industries.yaml"
    path.write_text("version: 1\naliases:\n  WIDGETS: [widgets]\n")
    with pytest.raises(ConfigError) as error:
        load_industry_dictionary(path)
    assert str(path) in str(error.value)
    assert "aliases.WIDGETS" in str(error.value)


# --- names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "key"),
    [
        ("Acme, Inc.", "Acme Inc.", "acme"),
        ("ACME Inc", "Acme Inc.", "acme"),
        ("acme inc", "Acme Inc.", "acme"),
        ("Acme,Inc.", "Acme Inc.", "acme"),
        ("Acme Incorporated", "Acme Inc.", "acme"),
        ("  Acme   Widgets  ltd ", "Acme Widgets Ltd", "acme widgets"),
        ("Acme Limited", "Acme Ltd", "acme"),
        ("ACME GMBH", "Acme GmbH", "acme"),
        ("Acme S. A.", "Acme S.A.", "acme"),
        ("Acme SA de CV", "Acme S.A. de C.V.", "acme"),
        ("ACME LLC", "Acme LLC", "acme"),
        ("Acme Co., Ltd.", "Acme Co., Ltd.", "acme"),
        ("Acme & Co.", "Acme & Co.", "acme"),
        ("IBM", "IBM", "ibm"),
        ("sap se", "SAP SE", "sap"),
        ("AT&T INC.", "AT&T Inc.", "att"),
        ("DHL EXPRESS", "DHL Express", "dhl express"),
        ("BANK OF AMERICA CORP", "Bank of America Corp.", "bank of america"),
        ("Procter & Gamble Co", "Procter & Gamble Co.", "procter gamble"),
        ("Procter and Gamble", "Procter and Gamble", "procter gamble"),
        ("the home depot", "The Home Depot", "home depot"),
        ("MCDONALD'S CORPORATION", "McDonald's Corp.", "mcdonalds"),
        ("mcdonald's corporation", "McDonald's Corp.", "mcdonalds"),
        ("eBay", "eBay", "ebay"),
        ("Inc.", "Inc.", "inc"),
    ],
)
def test_company_names(raw, expected, key):
    assert clean_company_name(raw) == expected
    assert clean_company_name(expected) == expected
    assert company_match_key(raw) == key
    assert company_match_key(key) == key


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_empty_company_names(raw):
    assert clean_company_name(raw) is None
    assert company_match_key(raw) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("JOHN", "John"),
        ("john", "John"),
        ("o'neil", "O'Neil"),
        ("mcdonald", "McDonald"),
        ("MARY-JANE", "Mary-Jane"),
        ("  mary   ann ", "Mary Ann"),
        ("ludwig van beethoven", "Ludwig van Beethoven"),
        ("ÉLODIE", "Élodie"),
        ("DeShawn", "DeShawn"),
        ("van der Berg", "van der Berg"),
        ("McKenzie", "McKenzie"),
        ("J.", "J."),
        ("李", "李"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_person_name(raw, expected):
    assert normalize_person_name(raw) == expected
    assert normalize_person_name(expected) == expected


# --- phones ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+1 (415) 555-0100", None, "+14155550100"),
        ("+1 (415) 555-0100", "DE", "+14155550100"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("415.555.0100 ext. 12", "US", "+14155550100"),
        ("030 1234567", "DE", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("+44 20 7946 0958", "gb", "+442079460958"),
    ],
)
def test_normalize_phone(raw, country, expected):
    assert normalize_phone(raw, country) == Converted(expected, None)
    assert normalize_phone(expected, country) == Converted(expected, None)


@pytest.mark.parametrize(
    ("raw", "country", "error"),
    [
        ("4155550100", None, "no country code and no known country"),
        ("call me", "US", "not a phone number"),
        ("555-0100", "US", "not a valid phone number"),
        ("12", "DE", "not a valid phone number"),
    ],
)
def test_normalize_phone_rejects(raw, country, error):
    assert normalize_phone(raw, country) == Converted(None, error)


@pytest.mark.parametrize("raw", ["", "  ", None])
def test_normalize_phone_empty(raw):
    assert normalize_phone(raw, "US") == Converted(None, None)
