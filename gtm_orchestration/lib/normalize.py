"""Normalization of lead and company fields to the values the CRM and the warehouse use.

E-mails (and the identity key that recognises one person across sources), domains,
countries, states and provinces, industries, company and person names and phone numbers.
Every function takes one raw value and returns a plain value, so the transform runs it once
per distinct value of a batch; all are pure, deterministic, cached and idempotent
(normalizing a normalized value gives it back). The dictionaries are YAML files under
``config/dictionaries`` loaded once per process; each function also takes an explicit
dictionary, for other configurations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Annotated

import phonenumbers
import pycountry
import tldextract
from pydantic import AfterValidator, BaseModel, ConfigDict

from gtm_orchestration.lib.config import ConfigError, config_path, load_model
from gtm_orchestration.lib.conversion import CACHE_SIZE, EMPTY, Converted, fold
from gtm_orchestration.lib.crm_schema import portal_schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------
# Text keys


def compact_key(text: str) -> str:
    """The letters and digits of ``fold(text)``: ``"U.S.A."`` -> ``"usa"``."""
    return re.sub(r"[\W_]+", "", fold(text))


def _collapse(raw: str | None) -> str:
    return " ".join(raw.split()) if raw else ""


def _is_single_case(text: str) -> bool:
    """Whether every cased letter of ``text`` is upper case, or every one lower case."""
    cased = [c for c in text if c.lower() != c.upper()]
    return bool(cased) and (all(c.isupper() for c in cased) or all(c.islower() for c in cased))


_LETTER_RUN = re.compile(r"[^\W\d_]+")


def _title_word(word: str) -> str:
    """One word in title case: ``o'neil`` -> ``O'Neil``, ``coca-cola`` -> ``Coca-Cola``.

    Letters after a digit stay lower (``21st``), as does a single letter after an
    apostrophe (``macy's``); ``Mc`` names get their second capital (``McDonald``).
    """
    lower = word.lower()

    def capitalize(match: re.Match[str]) -> str:
        run, start = match.group(), match.start()
        before = lower[start - 1] if start else ""
        if before.isdigit() or (before in ("'", "’") and len(run) == 1):
            return run
        return run[0].title() + run[1:]

    titled = _LETTER_RUN.sub(capitalize, lower)
    return re.sub(r"\bMc([a-z])(?=[a-z])", lambda m: "Mc" + m[1].upper(), titled)


# ---------------------------------------------------------------------------------------
# E-mail addresses and domains


@lru_cache(maxsize=CACHE_SIZE)
def normalize_email(raw: str | None) -> str | None:
    """The address trimmed and lower-cased, without ``mailto:``, quotes or ``<>``.

    ``"Jane Doe <Jane@Acme.com>"`` -> ``"jane@acme.com"``. Returns None when empty. The
    address is not checked: see ``is_valid_email``.
    """
    if raw is None:
        return None
    text = raw.strip()
    while True:
        before = text
        bracketed = re.search(r"<([^<>]*)>", text)
        if bracketed:
            text = bracketed.group(1)
        text = text.strip().strip("\"'").strip().rstrip(".,;")
        if text[:7].lower() == "mailto:":
            text = text[7:].split("?", 1)[0]
        if text == before:
            break
    return text.lower() or None


_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?")


def is_valid_email(email: str) -> bool:
    """Whether ``email`` is a plausible, deliverable-looking address.

    A pragmatic syntax check, not RFC 5322: exactly one ``@``; a local part of at most 64
    characters of letters, digits and ``!#$%&'*+/=?^_`{|}~-`` in dot-separated runs (no
    spaces, no quoted forms); a domain of at least two labels of letters, digits and inner
    hyphens; and a domain under a known public suffix (the bundled public suffix list), so
    typos such as ``acme.con`` and bare suffixes such as ``co.uk`` fail.
    """
    if not email or len(email) > 254 or email.count("@") != 1:
        return False
    local, domain = email.split("@")
    if len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return False
    tld = labels[-1]
    if not (tld.isalpha() or tld.lower().startswith("xn--")):
        return False
    return _registrable_domain(domain.lower()) is not None


@cache
def _tld_extract() -> tldextract.TLDExtract:
    # The public suffix snapshot bundled with tldextract only: no download, no cache folder,
    # so results never change between runs or machines.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


_HOST = re.compile(r"[\w-]+(?:\.[\w-]+)+")


@lru_cache(maxsize=CACHE_SIZE)
def _registrable_domain(host: str) -> str | None:
    if not _HOST.fullmatch(host):
        return None
    parts = _tld_extract()(host)
    if not parts.suffix or not parts.domain:
        return None
    return parts.top_domain_under_public_suffix


# A scheme, also the common typos of one ("https//", "http:/"), and "mailto:".
_SCHEME = re.compile(r"^(?:[a-z][a-z0-9+.-]*:/+|mailto:|https?/+)")
# Brackets and quotes around a website, or after it in Markdown ("[acme.com](...)").
_WEBSITE_WRAPPING = "<>[]()\"'`"
_HOST_END = re.compile(r"[/?#\\\[\]()<>\"'`]")


@lru_cache(maxsize=CACHE_SIZE)
def domain_from_website(
    raw: str | None,
    dictionary: FreeEmailDomains | None = None,
    platforms: PlatformDomains | None = None,
) -> str | None:
    """The company domain of a website, lower case: ``https://www.acme.co.uk/about`` ->
    ``acme.co.uk``, ``http://ACME.com:8080`` -> ``acme.com``, ``info@acme.com`` ->
    ``acme.com``.

    Scheme, ``www.`` and other subdomains, port, path, query, credentials, brackets and
    quotes are dropped; only the first of several listed websites counts. Returns None when
    there is no domain under a known public suffix (IP addresses, ``localhost``, ``N/A``),
    for a free-mail domain (``jane@gmail.com`` given as a website: free-mail domains never
    become companies), and for a page on a platform that hosts other organisations' pages
    (``linkedin.com/company/acme``, ``acme.wixsite.com``; ``platform_domains.yaml``).
    """
    tokens = re.split(r"[\s,;|]+", (raw or "").strip().lower())
    text = next((t.strip(_WEBSITE_WRAPPING) for t in tokens if t.strip(_WEBSITE_WRAPPING)), "")
    text = _SCHEME.sub("", text).lstrip("/")
    authority = _HOST_END.split(text, maxsplit=1)[0]
    path = text[len(authority) :].strip("/")
    host = authority.rpartition("@")[2].split(":")[0].strip(".")
    domain = _registrable_domain(host) if host else None
    if domain is None or is_free_email_domain(domain, dictionary):
        return None
    if domain in (platforms or _default_platform_domains()).domains and (
        path or host.removeprefix("www.") != domain
    ):
        return None
    return domain


class _FreeEmailFile(_Strict):
    version: int
    providers: list[str]
    domains: list[str]


@dataclass(frozen=True, eq=False)
class FreeEmailDomains:
    """Free-mail, ISP and disposable e-mail domains (``free_email_domains.yaml``)."""

    providers: frozenset[str]
    domains: frozenset[str]


def load_free_email_domains(path: Path | None = None) -> FreeEmailDomains:
    """Load a free e-mail domain dictionary; the bundled one by default."""
    path = path or config_path("dictionaries", "free_email_domains.yaml")
    data = load_model(path, _FreeEmailFile)
    return FreeEmailDomains(
        providers=frozenset(p.strip().lower() for p in data.providers),
        domains=frozenset(d.strip().lower() for d in data.domains),
    )


@cache
def _default_free_email_domains() -> FreeEmailDomains:
    return load_free_email_domains()


@lru_cache(maxsize=CACHE_SIZE)
def is_free_email_domain(domain: str, dictionary: FreeEmailDomains | None = None) -> bool:
    """Whether ``domain`` (or the domain it is a subdomain of) is a free-mail, ISP or
    disposable mail domain: gmail.com, yahoo.co.uk, web.de, mail.yahoo.com, ..."""
    dictionary = dictionary or _default_free_email_domains()
    host = domain.strip().lower().strip(".")
    if host in dictionary.domains:
        return True
    registrable = _registrable_domain(host)
    if registrable is None:
        return False
    return (
        registrable in dictionary.domains
        or _tld_extract()(registrable).domain in dictionary.providers
    )


@lru_cache(maxsize=CACHE_SIZE)
def domain_from_email(email: str | None, dictionary: FreeEmailDomains | None = None) -> str | None:
    """The registrable domain of an address (``jane@eu.acme.com`` -> ``acme.com``), or None
    when empty, not an address, or at a free-mail/ISP/disposable provider."""
    address = normalize_email(email)
    if address is None or "@" not in address:
        return None
    domain = _registrable_domain(address.rpartition("@")[2].strip("."))
    if domain is None or is_free_email_domain(domain, dictionary):
        return None
    return domain


def _registrable_domain_setting(value: str) -> str:
    if value != value.lower() or _registrable_domain(value) != value:
        raise ValueError("expected a registrable domain in lower case such as 'acme.com'")
    return value


RegistrableDomain = Annotated[str, AfterValidator(_registrable_domain_setting)]


class _PlatformDomainsFile(_Strict):
    version: int
    domains: list[RegistrableDomain]


@dataclass(frozen=True, eq=False)
class PlatformDomains:
    """Domains that host other organisations' pages (``platform_domains.yaml``)."""

    domains: frozenset[str]


def load_platform_domains(path: Path | None = None) -> PlatformDomains:
    """Load a platform domain dictionary; the bundled one by default."""
    path = path or config_path("dictionaries", "platform_domains.yaml")
    return PlatformDomains(domains=frozenset(load_model(path, _PlatformDomainsFile).domains))


@cache
def _default_platform_domains() -> PlatformDomains:
    return load_platform_domains()


# ---------------------------------------------------------------------------------------
# Identity e-mail keys


class _EmailProvider(_Strict):
    domains: list[str]
    canonical_domain: str | None = None
    ignore_dots: bool = False
    plus_tags: bool = False


class _EmailProvidersFile(_Strict):
    version: int
    providers: dict[str, _EmailProvider]


@dataclass(frozen=True)
class MailboxRule:
    """How one provider's addresses reach a mailbox: see ``email_providers.yaml``."""

    provider: str
    canonical_domain: str | None
    ignore_dots: bool
    plus_tags: bool


@dataclass(frozen=True, eq=False)
class EmailProviders:
    """Mailbox rules by domain (``email_providers.yaml``).

    ``domains`` holds exact domains; ``names`` the registrable names whose every public
    suffix belongs to a provider (``hotmail`` for hotmail.com, hotmail.co.uk, ...).
    """

    domains: dict[str, MailboxRule]
    names: dict[str, MailboxRule]

    def rule_for(self, domain: str) -> MailboxRule | None:
        """The mailbox rule of ``domain`` (lower case), or None for any other domain."""
        rule = self.domains.get(domain)
        if rule is not None or not self.names:
            return rule
        if _registrable_domain(domain) != domain:
            return None
        return self.names.get(_tld_extract()(domain).domain)

    def rule_may_apply_sql(self, domain: str) -> str:
        """SQL: whether a rule may apply to the lower-case domain in ``domain``; true for
        every domain ``rule_for`` has a rule for (and a few more, such as
        ``hotmail.example.com``, that ``rule_for`` then decides)."""
        conditions = []
        if self.domains:
            listed = ", ".join(f"'{name}'" for name in sorted(self.domains))
            conditions.append(f"{domain} IN ({listed})")
        if self.names:
            prefixes = "|".join(sorted(self.names))
            conditions.append(f"regexp_matches({domain}, '^({prefixes})\\.')")
        return f"coalesce({' OR '.join(conditions) or 'false'}, false)"


def load_email_providers(path: Path | None = None) -> EmailProviders:
    """Load an e-mail provider dictionary; the bundled one by default."""
    path = path or config_path("dictionaries", "email_providers.yaml")
    data = load_model(path, _EmailProvidersFile)
    domains: dict[str, MailboxRule] = {}
    names: dict[str, MailboxRule] = {}
    for name, spec in data.providers.items():
        where = f"{path}: providers.{name}"
        rule = MailboxRule(name, spec.canonical_domain, spec.ignore_dots, spec.plus_tags)
        for domain in spec.domains:
            wildcard = domain.endswith(".*")
            key = domain.removesuffix(".*")
            valid = re.fullmatch(r"[a-z0-9-]+", key) if wildcard else _registrable_domain(key)
            if not valid or key != key.lower() or (not wildcard and valid != key):
                raise ConfigError(
                    f"{where}.domains: expected a registrable domain in lower case such as "
                    f"'gmail.com', or a name with every suffix such as 'hotmail.*' "
                    f"(found {domain!r})"
                )
            index = names if wildcard else domains
            if key in index:
                raise ConfigError(
                    f"{where}.domains: {domain!r} is already a domain of "
                    f"{index[key].provider}; expected each domain under one provider"
                )
            index[key] = rule
        if spec.canonical_domain is not None and spec.canonical_domain not in spec.domains:
            raise ConfigError(
                f"{where}.canonical_domain: expected one of the provider's domains "
                f"({', '.join(spec.domains)}) (found {spec.canonical_domain!r})"
            )
    return EmailProviders(domains=domains, names=names)


@cache
def default_email_providers() -> EmailProviders:
    """The bundled e-mail provider dictionary, loaded once."""
    return load_email_providers()


@lru_cache(maxsize=CACHE_SIZE)
def identity_email(raw: str | None, providers: EmailProviders | None = None) -> str | None:
    """The key that recognises one person's address across sources: the address as
    ``normalize_email`` gives it, written the one way its provider delivers it.

    At Gmail dots in the local part and a ``+tag`` do not matter and googlemail.com is
    gmail.com (``J.Doe+news@googlemail.com`` -> ``jdoe@gmail.com``); at providers that only
    ignore ``+tag`` (Outlook/Hotmail/Live, iCloud, Fastmail, Proton) the tag is dropped and
    dots are kept; any other domain keeps its address as written apart from case. The
    rules are in ``email_providers.yaml``. Returns None when empty or not an address (no
    single ``@`` between a local part and a domain). ``normalize_email`` stays the CRM's key.
    """
    return identity_of_address(normalize_email(raw), providers)


def identity_of_address(address: str | None, providers: EmailProviders | None = None) -> str | None:
    """``identity_email`` of an address ``normalize_email`` gave."""
    if address is None or address.count("@") != 1:
        return None
    local, domain = address.split("@")
    rule = (providers or default_email_providers()).rule_for(domain)
    if rule is not None:
        if rule.plus_tags:
            local = local.split("+", 1)[0]
        if rule.ignore_dots:
            local = local.replace(".", "")
        domain = rule.canonical_domain or domain
    if not local or not domain:
        return None
    return f"{local}@{domain}"


# ---------------------------------------------------------------------------------------
# Countries


def _alpha_2(code: str) -> str:
    if code != code.upper() or pycountry.countries.get(alpha_2=code) is None:
        raise ValueError("expected an ISO 3166-1 alpha-2 country code such as 'US'")
    return code


CountryCode = Annotated[str, AfterValidator(_alpha_2)]


class _CountriesFile(_Strict):
    version: int
    display_names: dict[CountryCode, str] = {}
    aliases: dict[CountryCode, list[str]] = {}
    not_countries: list[str] = []


@dataclass(frozen=True, eq=False)
class CountryDictionary:
    """Country names and codes (``countries.yaml`` over ISO 3166-1)."""

    names: dict[str, str]
    index: dict[str, str]
    not_countries: frozenset[str]


def _country_key(text: str) -> str:
    """The matching key of a country spelling: without a leading "the" or the word "and",
    and "St." read as "Saint", so "St Kitts & Nevis" is "Saint Kitts and Nevis"."""
    text = re.sub(r"^\s*the\s+", "", fold(text))
    text = re.sub(r"\bst\b\.?\s*(?=[^\W\d_])", "saint ", text)
    return compact_key(re.sub(r"\s+and\s+|&", " ", text))


def load_country_dictionary(path: Path | None = None) -> CountryDictionary:
    """Load a country dictionary; the bundled one by default."""
    path = path or config_path("dictionaries", "countries.yaml")
    data = load_model(path, _CountriesFile)
    names: dict[str, str] = {}
    index: dict[str, str] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        names[code] = getattr(country, "common_name", None) or country.name
        for name in (code, country.alpha_3, country.name):
            index[_country_key(name)] = code
        for attribute in ("common_name", "official_name"):
            if hasattr(country, attribute):
                index[_country_key(getattr(country, attribute))] = code
    for code, name in data.display_names.items():
        names[code] = name
        index[_country_key(name)] = code
    alias_of: dict[str, str] = {}
    for code, aliases in data.aliases.items():
        for alias in aliases:
            key = _country_key(alias)
            if alias_of.get(key, code) != code:
                raise ConfigError(
                    f"{path}: aliases.{code}: {alias!r} is already an alias of "
                    f"{alias_of[key]}; expected each alias under one country"
                )
            alias_of[key] = code
            index[key] = code
    blocked = frozenset(_country_key(value) for value in data.not_countries)
    for key in blocked & alias_of.keys():
        raise ConfigError(
            f"{path}: not_countries: {key!r} is also an alias of {alias_of[key]}; "
            "expected a value to be either a country or not"
        )
    return CountryDictionary(names=names, index=index, not_countries=blocked)


@cache
def _default_countries() -> CountryDictionary:
    return load_country_dictionary()


@lru_cache(maxsize=CACHE_SIZE)
def normalize_country(
    raw: str | None, dictionary: CountryDictionary | None = None
) -> tuple[str, str] | None:
    """``(common English short name, ISO alpha-2 code)`` for a country written any known
    way: ``"U.S.A."`` -> ``("United States", "US")``, ``"DEU"`` -> ``("Germany", "DE")``,
    ``"Deutschland"`` -> ``("Germany", "DE")``, ``"Korea"`` -> ``("South Korea", "KR")``.

    Every ISO 3166-1 name, official name, common name and code is known, and so are the
    aliases of ``countries.yaml`` (native names, abbreviations, former names). Case,
    accents, punctuation, spacing, a leading "The", "and"/"&" and "St."/"Saint" do not
    matter. Returns None for an empty value, a placeholder (``N/A``, ``unknown``), a region
    (``EMEA``, ``Europe``, ``Remote``) or anything else that is not a country.
    """
    if raw is None:
        return None
    dictionary = dictionary or _default_countries()
    key = _country_key(raw)
    if not key or key in dictionary.not_countries:
        return None
    code = dictionary.index.get(key)
    return None if code is None else (dictionary.names[code], code)


# ---------------------------------------------------------------------------------------
# States and provinces


class _RegionCountry(_Strict):
    subdivision_types: list[str]
    excluded_codes: list[str] = []
    display_names: dict[str, str] = {}
    aliases: dict[str, list[str]] = {}


class _RegionsFile(_Strict):
    version: int
    countries: dict[CountryCode, _RegionCountry]


@dataclass(frozen=True, eq=False)
class RegionDictionary:
    """State and province names per country (``regions.yaml`` over ISO 3166-2)."""

    names: dict[str, dict[str, str]]
    index: dict[str, dict[str, str]]


def load_region_dictionary(path: Path | None = None) -> RegionDictionary:
    """Load a state and province dictionary; the bundled one by default."""
    path = path or config_path("dictionaries", "regions.yaml")
    data = load_model(path, _RegionsFile)
    names: dict[str, dict[str, str]] = {}
    index: dict[str, dict[str, str]] = {}
    for country, spec in data.countries.items():
        where = f"{path}: countries.{country}"
        subdivisions = {
            s.code.split("-", 1)[1]: s.name
            for s in pycountry.subdivisions.get(country_code=country) or ()
            if s.type in spec.subdivision_types
        }
        if not subdivisions:
            raise ConfigError(
                f"{where}.subdivision_types: expected ISO 3166-2 subdivision types of "
                f"{country} (found {spec.subdivision_types!r})"
            )
        for part in ("excluded_codes", "display_names", "aliases"):
            for code in getattr(spec, part):
                if code not in subdivisions:
                    raise ConfigError(
                        f"{where}.{part}.{code}: expected a subdivision code of {country} "
                        f"such as {min(subdivisions)!r} (found {code!r})"
                    )
        for code in spec.excluded_codes:
            del subdivisions[code]
        country_names = {
            code: spec.display_names.get(code, name) for code, name in subdivisions.items()
        }
        country_index: dict[str, str] = {}
        for code, name in subdivisions.items():
            for spelling in (code, name, country_names[code], *spec.aliases.get(code, ())):
                key = compact_key(spelling)
                if country_index.get(key, code) != code:
                    raise ConfigError(
                        f"{where}.aliases.{code}: {spelling!r} already names "
                        f"{country_index[key]}; expected each spelling under one subdivision"
                    )
                country_index[key] = code
        names[country] = country_names
        index[country] = country_index
    return RegionDictionary(names=names, index=index)


@cache
def _default_regions() -> RegionDictionary:
    return load_region_dictionary()


def _subdivision(text: str, country: str, dictionary: RegionDictionary) -> str | None:
    code = dictionary.index[country].get(compact_key(text))
    return None if code is None else dictionary.names[country][code]


@lru_cache(maxsize=CACHE_SIZE)
def normalize_us_state(raw: str | None, dictionary: RegionDictionary | None = None) -> str | None:
    """The full name of a US state, DC or inhabited territory written any known way
    (``CA``, ``Calif.``, ``california`` -> ``California``; ``Washington DC`` -> ``District
    of Columbia``), or None when empty or not one."""
    text = _collapse(raw)
    if not text:
        return None
    return _subdivision(text, "US", dictionary or _default_regions())


@lru_cache(maxsize=CACHE_SIZE)
def normalize_region(
    raw: str | None, country_code: str | None, dictionary: RegionDictionary | None = None
) -> str | None:
    """The state, province or region of an address in the country ``country_code``.

    For a country in the region dictionary (US, Canada) the full subdivision name (``ON``,
    ``Ont.`` -> ``Ontario``), or None when the value is not one of its subdivisions. For any
    other country the value as written with spaces collapsed, title-cased only when it was
    all upper or all lower case (a lone code of up to three letters such as ``NSW`` is kept).
    Returns None when empty.
    """
    text = _collapse(raw)
    if not text:
        return None
    dictionary = dictionary or _default_regions()
    country = (country_code or "").strip().upper()
    if country in dictionary.index:
        return _subdivision(text, country, dictionary)
    if not _is_single_case(text) or (text.isupper() and len(text) <= 3 and " " not in text):
        return text
    return _title_case(text, _default_names().lowercase_words)


# ---------------------------------------------------------------------------------------
# Industries


def _industry_option(value: str) -> str:
    if value not in _industry_options():
        raise ValueError(
            "expected an option of the companies industry property in "
            "config/crm/hubspot_properties.yaml, such as 'COMPUTER_SOFTWARE'"
        )
    return value


IndustryValue = Annotated[str, AfterValidator(_industry_option)]


@cache
def _industry_options() -> tuple[str, ...]:
    return portal_schema().objects["companies"].properties["industry"].options


class _IndustriesFile(_Strict):
    version: int
    labels: dict[IndustryValue, str] = {}
    generic_words: list[str] = []
    aliases: dict[IndustryValue, list[str]] = {}


@dataclass(frozen=True, eq=False)
class IndustryDictionary:
    """CRM industry options, their labels and aliases (``industries.yaml``)."""

    labels: dict[str, str]
    index: dict[str, str]
    generic_words: frozenset[str] = frozenset()


def _industry_words(text: str) -> list[str]:
    words = re.sub(r"[\W_]+", " ", fold(text)).split()
    return [word for word in words if word != "and"]


def _industry_key(text: str) -> str:
    return "".join(_industry_words(text))


def load_industry_dictionary(path: Path | None = None) -> IndustryDictionary:
    """Load an industry dictionary; the bundled one by default."""
    path = path or config_path("dictionaries", "industries.yaml")
    data = load_model(path, _IndustriesFile)
    labels: dict[str, str] = {}
    index: dict[str, str] = {}
    for value in _industry_options():
        default_label = _title_case(value.replace("_", " "), frozenset({"and", "or", "of"}))
        labels[value] = data.labels.get(value, default_label)
        index[_industry_key(value)] = value
        index[_industry_key(labels[value])] = value
    alias_of: dict[str, str] = {}
    for value, aliases in data.aliases.items():
        for alias in aliases:
            key = _industry_key(alias)
            owner = alias_of.get(key) or index.get(key, value)
            if owner != value:
                raise ConfigError(
                    f"{path}: aliases.{value}: {alias!r} already names {owner}; expected "
                    "each alias under one industry"
                )
            alias_of[key] = value
            index[key] = value
    generic = frozenset(word for w in data.generic_words for word in _industry_words(w))
    return IndustryDictionary(labels=labels, index=index, generic_words=generic)


@cache
def _default_industries() -> IndustryDictionary:
    return load_industry_dictionary()


@lru_cache(maxsize=CACHE_SIZE)
def normalize_industry(raw: str | None, dictionary: IndustryDictionary | None = None) -> str | None:
    """The CRM companies ``industry`` option for an industry written any known way
    (``SaaS`` -> ``COMPUTER_SOFTWARE``, ``Fintech`` -> ``FINANCIAL_SERVICES``,
    ``Hospitals and Health Care`` -> ``HOSPITAL_HEALTH_CARE``).

    A value that matches nothing as a whole is tried without generic words such as
    ``services`` or ``manufacturing`` (``Semiconductor Manufacturing`` -> ``SEMICONDUCTORS``),
    then part by part (``Retail / E-commerce`` -> ``RETAIL``). Returns None when empty or
    unknown.
    """
    if raw is None:
        return None
    dictionary = dictionary or _default_industries()
    parts = [raw, *re.split(r"[/,;|&+]|\band\b", raw)]
    for part in parts:
        words = _industry_words(part)
        specific = [word for word in words if word not in dictionary.generic_words]
        for key in ("".join(words), "".join(specific)):
            value = dictionary.index.get(key) if key else None
            if value is not None:
                return value
    return None


def industry_label(value: str, dictionary: IndustryDictionary | None = None) -> str:
    """The display label of a CRM industry option (``HOSPITAL_HEALTH_CARE`` ->
    ``Hospital & Health Care``); an unknown value is returned as given."""
    return (dictionary or _default_industries()).labels.get(value, value)


# ---------------------------------------------------------------------------------------
# Company and person names


class _CompanyNames(_Strict):
    legal_suffixes: dict[str, list[str]]
    acronyms: list[str]
    lowercase_words: list[str]


class _PersonNames(_Strict):
    particles: list[str]


class _NamesFile(_Strict):
    version: int
    company: _CompanyNames
    person: _PersonNames


def _is_name_word(word: str) -> bool:
    """Whether ``word`` can name a company on its own: not punctuation, not "and"."""
    return compact_key(word) not in ("", "and")


@dataclass(frozen=True, eq=False)
class NameRules:
    """Legal forms, acronyms and name particles (``names.yaml``)."""

    legal_suffixes: dict[str, str]
    longest_suffix: int
    acronyms: dict[str, str]
    lowercase_words: frozenset[str]
    particles: frozenset[str]

    def split_legal_suffix(self, words: list[str]) -> tuple[list[str], str | None]:
        """``(name words, canonical legal form)`` of a name's words; the form may be None."""
        for size in range(min(self.longest_suffix, len(words) - 1), 0, -1):
            if not re.search(r"[^\W_]", words[-size]):
                continue  # "Acme & Co.": the "&" belongs to the name
            if not any(_is_name_word(word) for word in words[:-size]):
                break  # a legal form is never the whole name ("& GmbH", "and GmbH")
            canonical = self.legal_suffixes.get(compact_key("".join(words[-size:])))
            if canonical is not None:
                return words[:-size], canonical
        return words, None


def load_name_rules(path: Path | None = None) -> NameRules:
    """Load the name rules; the bundled ones by default."""
    path = path or config_path("dictionaries", "names.yaml")
    data = load_model(path, _NamesFile)
    suffixes: dict[str, str] = {}
    for canonical, spellings in data.company.legal_suffixes.items():
        for spelling in (canonical, *spellings):
            key = compact_key(spelling)
            if suffixes.get(key, canonical) != canonical:
                raise ConfigError(
                    f"{path}: company.legal_suffixes.{canonical}: {spelling!r} is already a "
                    f"spelling of {suffixes[key]!r}; expected each spelling under one form"
                )
            suffixes[key] = canonical
    # A spelling such as "S. A. de C. V." spans up to as many words as it has letters.
    longest = max(len(key) for key in suffixes)
    return NameRules(
        legal_suffixes=suffixes,
        longest_suffix=longest,
        acronyms={compact_key(a): a for a in data.company.acronyms},
        lowercase_words=frozenset(w.lower() for w in data.company.lowercase_words),
        particles=frozenset(p.lower() for p in data.person.particles),
    )


@cache
def _default_names() -> NameRules:
    return load_name_rules()


def _title_case(text: str, lowercase_words: frozenset[str]) -> str:
    words = text.split(" ")
    return " ".join(
        w.lower() if i and w.lower() in lowercase_words else _title_word(w)
        for i, w in enumerate(words)
    )


def _company_case(text: str, rules: NameRules) -> str:
    """Title case for a name written in one case, keeping acronyms and brand spellings."""
    all_caps = text.isupper()
    words = []
    for i, word in enumerate(text.split(" ")):
        acronym = rules.acronyms.get(compact_key(word))
        letters = [c for c in word if c.isalpha()]
        if acronym is not None:
            words.append(acronym)
        elif i and word.lower() in rules.lowercase_words:
            words.append(word.lower())
        elif all_caps and letters and not any(c in "AEIOU" for c in fold("".join(letters)).upper()):
            # "DHL", "KPMG": a word with no vowel is an abbreviation, not a word.
            words.append(word)
        else:
            words.append(_title_word(word))
    return " ".join(words)


@lru_cache(maxsize=CACHE_SIZE)
def clean_company_name(raw: str | None, rules: NameRules | None = None) -> str | None:
    """The company name tidied for display: ``"ACME, INC"`` -> ``"Acme Inc."``.

    Spaces are collapsed, a name written all in capitals or all in lower case is title-cased
    (known acronyms and vowel-less abbreviations kept: ``IBM``, ``DHL``), and a trailing
    legal form is written its canonical way without a comma before it (``Inc.``, ``LLC``,
    ``Ltd``, ``GmbH``, ``S.A.``). Mixed-case names keep their casing. Returns None when empty.
    """
    rules = rules or _default_names()
    name = _collapse(raw)
    # Writing one legal form canonically can reveal another before it ("Co., Limited" ->
    # "Co. Ltd" -> "Co., Ltd."), so tidy until nothing changes; a few rounds always suffice.
    for _ in range(4):
        tidied = _tidy_company_name(name, rules)
        if tidied == name:
            break
        name = tidied
    return name or None


def _tidy_company_name(name: str, rules: NameRules) -> str:
    text = re.sub(r"(?<=[^\W\d_]),(?=[^\W\d_])", ", ", name)
    base_words, suffix = rules.split_legal_suffix(text.split(" "))
    base = " ".join(base_words).rstrip(" ,")
    if _is_single_case(base):
        base = _company_case(base, rules)
    return " ".join(part for part in (base, suffix) if part)


@lru_cache(maxsize=CACHE_SIZE)
def company_match_key(name: str | None, rules: NameRules | None = None) -> str:
    """The key that identifies a company across spellings, for deduplication.

    Lower case without accents, punctuation, ``&``/``and``, a leading ``The`` or trailing
    legal forms: ``"Acme, Inc."``, ``"ACME Inc"`` and ``"acme"`` all give ``"acme"``;
    ``"AT&T Corp."`` gives ``"att"``. Returns ``""`` when empty.
    """
    rules = rules or _default_names()
    # Punctuation inside a word joins it (AT&T, E.ON, O'Reilly); elsewhere it separates.
    text = re.sub(r"(?<=\w)[&'’.](?=\w)", "", fold(name or ""))
    words = [w for w in re.split(r"[\W_]+", text) if w and w != "and"]
    # Legal forms go before "The", as clean_company_name sees them ("The GmbH" keeps "The").
    while True:
        words, suffix = rules.split_legal_suffix(words)
        if suffix is not None:
            continue
        if len(words) > 1 and words[0] == "the":
            words = words[1:]
            continue
        return " ".join(words)


@lru_cache(maxsize=CACHE_SIZE)
def normalize_person_name(raw: str | None, rules: NameRules | None = None) -> str | None:
    """A first or last name tidied: spaces collapsed, and title-cased when written all in
    capitals or all in lower case (``JOHN`` -> ``John``, ``o'neil`` -> ``O'Neil``,
    ``mcdonald`` -> ``McDonald``, ``ludwig van beethoven`` -> ``Ludwig van Beethoven``).
    Mixed case is the person's own spelling and is kept (``DeShawn``, ``van der Berg``).
    Returns None when empty."""
    text = _collapse(raw)
    if not text:
        return None
    if not _is_single_case(text):
        return text
    return _title_case(text, (rules or _default_names()).particles)


# ---------------------------------------------------------------------------------------
# Phone numbers


def _phone_region(country: str | None) -> str | None:
    """The ISO alpha-2 region to read a national number in: the record's country as a code
    (``DE``) or written any way ``normalize_country`` knows (``Germany``, ``DEU``)."""
    text = (country or "").strip()
    if not text:
        return None
    if text.upper() in phonenumbers.SUPPORTED_REGIONS:
        return text.upper()
    found = normalize_country(text)  # "Germany", "DEU", and "UK" (not a region code)
    return None if found is None else found[1]


@lru_cache(maxsize=CACHE_SIZE)
def normalize_phone(raw: str | None, country_code: str | None) -> Converted:
    """The number in E.164 (``+14155550100``), read as a number of the record's country
    unless it has its own international prefix (``030 1234567`` with ``DE`` ->
    ``+49301234567``; ``+44 20 7946 0958`` with ``DE`` -> ``+442079460958``).

    ``country_code`` is an ISO alpha-2 code, or a country written any way
    ``normalize_country`` knows (``Germany``). ``tel:`` prefixes, letters for digits
    (``1-800-FLOWERS``) and the ``00`` international prefix are understood; an extension
    (``ext. 12``) is dropped. Returns ``Converted(None, None)`` when empty, and value None
    with the raw value and a reason when the number cannot be read or is not a valid
    number of its country (the caller keeps the raw value).
    """
    text = (raw or "").strip()
    if not text:
        return EMPTY
    region = _phone_region(country_code)
    if region is None and re.match(r"00[1-9]", text):
        text = "+" + text[2:]  # 00 is the international prefix nearly everywhere
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            reason = (
                "no known country code and no record country (expected a number starting "
                "with + and its country code, or the record's country)"
            )
            return Converted(None, reason, raw=raw)
        return Converted(None, "not a phone number (expected e.g. '+1 415 555 0100')", raw=raw)
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_country_code(number.country_code)
        reason = f"not a valid phone number of {where} (too short, too long or not in use)"
        return Converted(None, reason, raw=raw)
    return Converted(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
