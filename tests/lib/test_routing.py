import hashlib

import pytest

from gtm_orchestration.lib.config import ConfigError, config_path
from gtm_orchestration.lib.routing import Route, load_territory_rules, round_robin_owner, route_lead

CRM_OWNERS = {f"1000{i}" for i in range(1, 9)}


def lead(**changes):
    base = dict(
        email="jane@acme.com",
        domain="acme.com",
        country_code="US",
        state="California",
        employees=50,
    )
    return base | changes


@pytest.mark.parametrize(
    ("changes", "territory", "rule"),
    [
        # named accounts win over geography and size, by website or work e-mail domain
        (
            {"domain": "globex.com", "country_code": "DE"},
            "Strategic Accounts",
            "named_account:globex.com",
        ),
        (
            {"email": "pat@initech.com", "domain": None},
            "Strategic Accounts",
            "named_account:initech.com",
        ),
        (
            {"domain": "https://www.globex.co.uk/contact"},
            "Strategic Accounts",
            "named_account:globex.co.uk",
        ),
        (
            {"domain": "umbrella-corp.de", "country_code": "US"},
            "EMEA Strategic Accounts",
            "named_account:umbrella-corp.de",
        ),
        # geography
        ({}, "NA West", "territory:NA West;owner:round_robin"),
        ({"state": "CA"}, "NA West", "territory:NA West;owner:round_robin"),
        ({"state": "New York"}, "NA East", "territory:NA East;owner:round_robin"),
        ({"state": None}, "NA East", "territory:NA East;owner:round_robin"),
        ({"country_code": "CA", "state": "BC"}, "NA West", "territory:NA West;owner:round_robin"),
        (
            {"country_code": "CA", "state": "Ontario"},
            "NA East",
            "territory:NA East;owner:round_robin",
        ),
        ({"country_code": "GB", "state": None}, "EMEA", "territory:EMEA;owner:round_robin"),
        ({"country_code": "ZA"}, "EMEA", "territory:EMEA;owner:round_robin"),
        ({"country_code": "JP"}, "APAC", "territory:APAC;owner:round_robin"),
        ({"country_code": "br"}, "LATAM", "territory:LATAM;owner:round_robin"),
        # segment by size
        (
            {"employees": 1000},
            "NA Enterprise",
            "territory:NA West;segment:NA Enterprise;owner:round_robin",
        ),
        (
            {"state": "Texas", "employees": 25_000},
            "NA Enterprise",
            "territory:NA East;segment:NA Enterprise;owner:round_robin",
        ),
        (
            {"country_code": "DE", "employees": 5000},
            "EMEA Enterprise",
            "territory:EMEA;segment:EMEA Enterprise;owner:round_robin",
        ),
        ({"country_code": "DE", "employees": None}, "EMEA", "territory:EMEA;owner:round_robin"),
        ({"country_code": "JP", "employees": 5000}, "APAC", "territory:APAC;owner:round_robin"),
        # nothing matched
        ({"country_code": None}, "Unassigned", "unassigned"),
        ({"country_code": "AQ"}, "Unassigned", "unassigned"),
    ],
)
def test_route_lead(changes, territory, rule):
    route = route_lead(**lead(**changes))
    assert (route.territory, route.rule) == (territory, rule)
    assert route.owner_id is None if territory == "Unassigned" else route.owner_id in CRM_OWNERS


def test_named_account_owner():
    assert route_lead(**lead(domain="globex.com")) == Route(
        "Strategic Accounts", "10001", "named_account:globex.com"
    )


def test_round_robin_is_stable_across_processes():
    # Pinned owners: a salted hash() would change these from one process to the next.
    assert route_lead(**lead(email="jane@acme.com")).owner_id == "10004"
    assert route_lead(**lead(email="pat@acme.com")).owner_id == "10003"
    assert route_lead(**lead(email="JANE@ACME.COM ")).owner_id == "10004"


def test_round_robin_uses_sha256_of_the_address():
    owners = ["a", "b", "c"]
    for email in ("jane@acme.com", "x@y.org", "lead42@initech.io"):
        digest = hashlib.sha256(email.encode()).digest()
        assert round_robin_owner(email, owners) == owners[int.from_bytes(digest[:8], "big") % 3]
    assert round_robin_owner("jane@acme.com", []) is None


def test_round_robin_spreads_leads():
    owners = {route_lead(**lead(email=f"lead{i}@acme.com")).owner_id for i in range(50)}
    assert owners == {"10003", "10004"}


def _write(tmp_path, old: str, new: str):
    text = config_path("territories.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "territories.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_custom_rules(tmp_path):
    path = _write(
        tmp_path, "  name: Unassigned\n  owners: []", '  name: Triage\n  owners: ["10008"]'
    )
    rules = load_territory_rules(path)
    assert route_lead(**lead(country_code=None), rules=rules) == Route(
        "Triage", "10008", "unassigned;owner:round_robin"
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('    owner: "10002"', '    owner: "99999"', "named_accounts[1].owner"),
        ('    owners: ["10007"]', '    owners: ["10009"]', "territories[4].owners"),
        ("              New Mexico,", "              New Mexcio,", "territories[0].regions"),
        ("    domains: [initech.com]", "    domains: [www.initech.com]", "named_accounts[1]"),
        ("    countries: [US, CA, PM]", "    countries: [US, CA, XX]", "territories[1].countries"),
        ("  - name: APAC\n", "  - nmae: APAC\n", "territories[4].nmae"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, old, new, key):
    path = _write(tmp_path, old, new)
    with pytest.raises(ConfigError) as error:
        load_territory_rules(path)
    assert str(path) in str(error.value)
    assert key in str(error.value)
