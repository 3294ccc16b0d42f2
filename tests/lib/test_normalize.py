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
    identity_email,
    industry_label,
    is_free_email_domain,
    is_valid_email,
    load_country_dictionary,
    load_email_providers,
    load_industry_dictionary,
    load_platform_domains,
    load_region_dictionary,
    normalize_country,
    normalize_email,
    normalize_industry,
    normalize_person_name,
    normalize_phone,
    normalize_region,
    normalize_us_state,
)

NO_PHONE_COUNTRY = (
    "no known country code and no record country (expected a number starting with + and its "
    "country code, or the record's country)"
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
    ("raw", "expected"),
    [
        ("J.Doe+news@googlemail.com", "jdoe@gmail.com"),
        ("jane.doe@gmail.com", "janedoe@gmail.com"),
        ("JaneDoe@Gmail.com", "janedoe@gmail.com"),
        ("  Jane.Doe+crm@GMAIL.COM ", "janedoe@gmail.com"),
        ("Jane Doe <j.a.n.e.doe@gmail.com>", "janedoe@gmail.com"),
        ("jane.doe+tag@outlook.com", "jane.doe@outlook.com"),
        ("Jane.Doe+tag@hotmail.co.uk", "jane.doe@hotmail.co.uk"),
        ("jane.doe+x@hotmail.fr", "jane.doe@hotmail.fr"),
        ("jane.doe+x@live.com", "jane.doe@live.com"),
        ("jane.doe+x@icloud.com", "jane.doe@icloud.com"),
        ("jane.doe+x@me.com", "jane.doe@me.com"),
        ("jane.doe+x@fastmail.com", "jane.doe@fastmail.com"),
        ("jane.doe+x@proton.me", "jane.doe@proton.me"),
        ("jane.doe+x@protonmail.com", "jane.doe@protonmail.com"),
        # corporate and other domains keep their address apart from case
        ("John.Smith+crm@Acme.com", "john.smith+crm@acme.com"),
        ("jane.doe+x@yahoo.com", "jane.doe+x@yahoo.com"),
        ("jane.doe@mail.google.com", "jane.doe@mail.google.com"),
        ("jane.doe+x@outlook.acme.com", "jane.doe+x@outlook.acme.com"),
        ("+news@gmail.com", None),
        ("not an address", None),
        ("jane@acme@com", None),
        ("", None),
        (None, None),
    ],
)
def test_identity_email(raw, expected):
    assert identity_email(raw) == expected
    assert identity_email(expected) == expected


def test_identity_email_leaves_the_crm_key_alone():
    assert normalize_email("J.Doe+news@googlemail.com") == "j.doe+news@googlemail.com"


def test_email_providers_reject_a_domain_of_two_providers(tmp_path):
    path = tmp_path / "email_providers.yaml"
    path.write_text(
        "version: 1\nproviders:\n  a:\n    domains: [mail.com]\n  b:\n    domains: [mail.com]\n"
    )
    with pytest.raises(ConfigError, match=r"providers\.b\.domains: 'mail\.com' is already"):
        load_email_providers(path)


@pytest.mark.parametrize("domain", ["Gmail.com", "mail.gmail.com", "co.uk", "*.gmail"])
def test_email_providers_reject_malformed_domains(tmp_path, domain):
    path = tmp_path / "email_providers.yaml"
    path.write_text(f"version: 1\nproviders:\n  a:\n    domains: ['{domain}']\n")
    with pytest.raises(ConfigError, match=r"providers\.a\.domains: expected a registrable"):
        load_email_providers(path)


def test_email_providers_canonical_domain_is_their_own(tmp_path):
    path = tmp_path / "email_providers.yaml"
    path.write_text(
        "version: 1\nproviders:\n  a:\n    domains: [mail.com]\n    canonical_domain: gmail.com\n"
    )
    with pytest.raises(ConfigError, match=r"providers\.a\.canonical_domain: expected one of"):
        load_email_providers(path)


def test_every_mail_provider_is_free_mail():
    providers = load_email_providers()
    domains = [*providers.domains, *(f"{name}.co.uk" for name in providers.names)]
    assert [d for d in domains if not is_free_email_domain(d)] == []


def test_custom_email_providers(tmp_path):
    path = tmp_path / "email_providers.yaml"
    path.write_text(
        "version: 1\nproviders:\n  yahoo:\n    domains: [yahoo.*]\n    plus_tags: true\n"
    )
    custom = load_email_providers(path)
    assert identity_email("Jane.Doe+x@Yahoo.co.uk", custom) == "jane.doe@yahoo.co.uk"
    assert identity_email("jane.doe+x@gmail.com", custom) == "jane.doe+x@gmail.com"


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
        ("http://ACME.com:8080", "acme.com"),
        ("acme.com.", "acme.com"),
        ("<https://acme.com>", "acme.com"),
        ('"www.acme.com"', "acme.com"),
        ("(acme.com)", "acme.com"),
        ("[acme.com](https://acme.com)", "acme.com"),
        ("https//www.acme.com", "acme.com"),
        ("http:/acme.com/about", "acme.com"),
        ("https://acme.com\\about", "acme.com"),
        # an e-mail address given as a website
        ("info@acme.com", "acme.com"),
        ("mailto:sales@acme.de", "acme.de"),
        ("jane@gmail.com", None),
        ("mailto:jane@yahoo.co.uk", None),
        # free-mail domains never become companies
        ("gmail.com", None),
        ("https://www.hotmail.com", None),
        # pages on platforms that host other organisations
        ("https://www.linkedin.com/company/acme", None),
        ("linkedin.com/in/jane-doe", None),
        ("facebook.com/acme", None),
        ("acme.myshopify.com", None),
        ("https://acme.github.io/docs", None),
        ("https://sites.google.com/view/acme", None),
        ("bit.ly/acme", None),
        ("https://www.linkedin.com", "linkedin.com"),
        ("github.com/", "github.com"),
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


def test_platform_domains_are_registrable_domains(tmp_path):
    path = tmp_path / "platform_domains.yaml"
    path.write_text("version: 1\ndomains: [sites.google.com]\n")
    with pytest.raises(ConfigError) as error:
        load_platform_domains(path)
    assert str(path) in str(error.value)
    assert "domains[0]" in str(error.value) and "registrable domain" in str(error.value)


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
        ("jane@ymail.com", None),
        ("jane@yahoo.com.br", None),
        ("jane@me.com", None),
        ("jane@aol.com", None),
        ("jane@hotmail.co.uk", None),
        ("jane@live.fr", None),
        ("jane@protonmail.com", None),
        ("jane@pm.me", None),
        ("jane@yandex.com", None),
        ("jane@gmx.at", None),
        ("jane@t-online.de", None),
        ("jane@orange.fr", None),
        ("jane@naver.com", None),
        ("jane@126.com", None),
        ("jane@privaterelay.appleid.com", None),
        ("jane@duck.com", None),
        ("jane@mailinator.com", None),
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
        ("America", ("United States", "US")),
        ("US of America", ("United States", "US")),
        ("Allemagne", ("Germany", "DE")),
        ("Espagne", ("Spain", "ES")),
        ("Österreich", ("Austria", "AT")),
        ("Oesterreich", ("Austria", "AT")),
        ("Korea", ("South Korea", "KR")),
        ("Republic of Korea", ("South Korea", "KR")),
        ("Korea, South", ("South Korea", "KR")),
        ("North Korea", ("North Korea", "KP")),
        ("Korea (North)", ("North Korea", "KP")),
        ("Czechia", ("Czechia", "CZ")),
        ("U.A.E.", ("United Arab Emirates", "AE")),
        ("Dubai", ("United Arab Emirates", "AE")),
        ("Russia", ("Russia", "RU")),
        ("Vietnam", ("Vietnam", "VN")),
        ("Iran", ("Iran", "IR")),
        ("Taiwan", ("Taiwan", "TW")),
        ("Republic of China", ("Taiwan", "TW")),
        ("People's Republic of China", ("China", "CN")),
        ("Hong Kong SAR", ("Hong Kong", "HK")),
        ("Great Britain and Northern Ireland", ("United Kingdom", "GB")),
        ("Scotland", ("United Kingdom", "GB")),
        ("Slovak Republic", ("Slovakia", "SK")),
        ("Bosnia", ("Bosnia and Herzegovina", "BA")),
        ("Bosnia & Herzegovina", ("Bosnia and Herzegovina", "BA")),
        ("Trinidad & Tobago", ("Trinidad and Tobago", "TT")),
        ("St. Lucia", ("Saint Lucia", "LC")),
        ("St Kitts & Nevis", ("Saint Kitts and Nevis", "KN")),
        ("Luxemburg", ("Luxembourg", "LU")),
        ("Phillipines", ("Philippines", "PH")),
        ("Ivory Coast", ("Côte d'Ivoire", "CI")),
        ("AND", ("Andorra", "AD")),
        ("ST", ("Sao Tome and Principe", "ST")),
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
        "Worldwide",
        "Remote",
        "Asia",
        "Americas",
        "North America",
        "LATAM",
        "APAC",
        "Asia Pacific",
        "DACH",
        "Nordics",
        "Rest of World",
        "Southeast Asia",
        "Middle East",
        "n/a",
        "None",
        "Not specified",
        "Kosovo",
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
        spellings = [country.alpha_3, country.name]
        spellings += [
            getattr(country, a) for a in ("official_name", "common_name") if hasattr(country, a)
        ]
        if country.alpha_2 != "NA":  # "NA" is "not available"
            spellings.append(country.alpha_2)
        for spelling in spellings:
            name, code = normalize_country(spelling)
            assert code == country.alpha_2, spelling
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
        ("N. Carolina", "North Carolina"),
        ("W. Virginia", "West Virginia"),
        ("S Dakota", "South Dakota"),
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
        ("QC", "CA", "Quebec"),
        ("Que.", "CA", "Quebec"),
        ("Colombie-Britannique", "CA", "British Columbia"),
        ("Nfld.", "CA", "Newfoundland and Labrador"),
        ("CA", "CA", None),  # California is not a Canadian province
        ("ON", "US", None),
        ("Calif.", "us", "California"),
        ("N.Y.", "US", "New York"),
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
        ("Software Development", "COMPUTER_SOFTWARE"),
        ("B2B SaaS", "COMPUTER_SOFTWARE"),
        ("Internet Software & Services", "COMPUTER_SOFTWARE"),
        ("IT Services and IT Consulting", "INFORMATION_TECHNOLOGY_AND_SERVICES"),
        ("Information Technology & Services", "INFORMATION_TECHNOLOGY_AND_SERVICES"),
        ("High Tech", "INFORMATION_TECHNOLOGY_AND_SERVICES"),
        ("Technology, Information and Internet", "INTERNET"),
        ("Banking, Financial Services and Insurance", "FINANCIAL_SERVICES"),
        ("BFSI", "FINANCIAL_SERVICES"),
        ("Crypto", "FINANCIAL_SERVICES"),
        ("Banking & Finance", "BANKING"),
        ("Healthcare & Life Sciences", "HOSPITAL_HEALTH_CARE"),
        ("Hospitals and Health Care", "HOSPITAL_HEALTH_CARE"),
        ("Pharmaceutical Manufacturing", "PHARMACEUTICALS"),
        ("Biotechnology Research", "BIOTECHNOLOGY"),
        ("Medical Equipment Manufacturing", "MEDICAL_DEVICES"),
        ("Advertising Services", "MARKETING_AND_ADVERTISING"),
        ("Business Consulting and Services", "MANAGEMENT_CONSULTING"),
        ("Staffing & Recruiting", "STAFFING_AND_RECRUITING"),
        ("Transportation, Logistics, Supply Chain and Storage", "LOGISTICS_AND_SUPPLY_CHAIN"),
        ("Truck Transportation", "TRANSPORTATION_TRUCKING_RAILROAD"),
        ("Broadcast Media Production and Distribution", "BROADCAST_MEDIA"),
        ("Semiconductor Manufacturing", "SEMICONDUCTORS"),
        ("Machinery Manufacturing", "MACHINERY"),
        ("Design Services", "DESIGN"),
        ("Non-profit Organizations", "NON_PROFIT_ORGANIZATION_MANAGEMENT"),
        ("Food and Beverage Services", "FOOD_BEVERAGES"),
        ("Retail Groceries", "SUPERMARKETS"),
        ("Armed Forces", "MILITARY"),
        ("Services", None),
        ("Other", None),
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
        ("Acme Corporation", "Acme Corp.", "acme"),
        ("Acme L.L.C.", "Acme LLC", "acme"),
        ("Acme Limited Liability Company", "Acme LLC", "acme"),
        ("ACME PTY LTD", "Acme Pty Ltd", "acme"),
        ("Acme Pty. Ltd.", "Acme Pty Ltd", "acme"),
        ("Acme Pty", "Acme Pty", "acme"),
        ("Acme Pte. Ltd.", "Acme Pte. Ltd.", "acme"),
        ("Acme Sdn Bhd", "Acme Sdn. Bhd.", "acme"),
        ("Acme AG", "Acme AG", "acme"),
        ("Acme Aktiengesellschaft", "Acme AG", "acme"),
        ("Acme G.m.b.H.", "Acme GmbH", "acme"),
        ("Acme UG (haftungsbeschränkt)", "Acme UG (haftungsbeschränkt)", "acme"),
        ("Acme SAS", "Acme SAS", "acme"),
        ("Acme S.A.S.", "Acme SAS", "acme"),
        ("Acme, S.A.", "Acme S.A.", "acme"),
        ("Acme SL", "Acme S.L.", "acme"),
        ("Acme BV", "Acme B.V.", "acme"),
        ("Acme B.V", "Acme B.V.", "acme"),
        ("Acme AB (publ)", "Acme AB (publ)", "acme"),
        ("Acme Oyj", "Acme Oyj", "acme"),
        ("Acme Kft.", "Acme Kft.", "acme"),
        ("Acme s.r.o.", "Acme s.r.o.", "acme"),
        ("Acme Ltée", "Acme Ltée", "acme"),
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


def test_spellings_of_one_company_share_a_match_key():
    spellings = ["Acme, Inc.", "ACME Inc", "Acme Incorporated", "acme inc.", "The Acme Company"]
    assert {company_match_key(s) for s in spellings} == {"acme"}


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+1 (415) 555-0100", None, "+14155550100"),
        ("(415) 555-0100", "United States", "+14155550100"),
        ("030 1234567", "Germany", "+49301234567"),
        ("0049 30 1234567", None, "+49301234567"),
        ("+49 (0)30 1234567", "DE", "+49301234567"),
        ("tel:+1-415-555-0100", None, "+14155550100"),
        ("1-800-FLOWERS", "US", "+18003569377"),
        ("07911 123456", "UK", "+447911123456"),
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
        ("4155550100", None, NO_PHONE_COUNTRY),
        ("415 555 0100", "Atlantis", NO_PHONE_COUNTRY),
        ("call me", "US", "not a phone number (expected e.g. '+1 415 555 0100')"),
        ("555-0100", "US", "not a valid phone number of US (too short, too long or not in use)"),
        ("12", "DE", "not a valid phone number of DE (too short, too long or not in use)"),
    ],
)
def test_normalize_phone_rejects(raw, country, error):
    assert normalize_phone(raw, country) == Converted(None, error, raw=raw)


@pytest.mark.parametrize("raw", ["", "  ", None])
def test_normalize_phone_empty(raw):
    assert normalize_phone(raw, "US") == Converted(None, None)
