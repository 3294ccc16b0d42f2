import pytest

from gtm_orchestration.lib.config import ConfigError, config_path
from gtm_orchestration.lib.scoring import Score, load_scoring_rules, score_fit

IDEAL = dict(
    industry="COMPUTER_SOFTWARE",
    employees=500,
    country_code="US",
    seniority="vp",
    function="marketing",
)


def test_ideal_lead_scores_100_with_every_reason():
    assert score_fit(**IDEAL) == Score(
        100,
        (
            "industry COMPUTER_SOFTWARE +25",
            "employees 200-4999 +20",
            "country US +15",
            "seniority vp +20",
            "function marketing +20",
        ),
    )


def test_unknown_everything_scores_0():
    score = score_fit(
        industry=None, employees=None, country_code=None, seniority=None, function=None
    )
    assert score == Score(0, ())


@pytest.mark.parametrize(
    ("changes", "value"),
    [
        ({"industry": "RETAIL"}, 80),
        ({"industry": "FARMING"}, 75),  # known, not listed: default 0
        ({"employees": 10}, 80),
        ({"employees": 50}, 90),
        ({"employees": 5000}, 95),
        ({"employees": 10_000}, 90),
        ({"country_code": "DE"}, 97),
        ({"country_code": "BR"}, 85),
        ({"seniority": "individual_contributor"}, 83),
        ({"function": "engineering"}, 83),
        ({"seniority": None, "function": None}, 60),  # a company: no title
    ],
)
def test_points_per_attribute(changes, value):
    assert score_fit(**(IDEAL | changes)).value == value


def test_negative_points_are_explained_and_clamped():
    score = score_fit(
        industry="GOVERNMENT_ADMINISTRATION",
        employees=3,
        country_code="KP",
        seniority="individual_contributor",
        function="legal",
    )
    assert score == Score(
        0,
        (
            "industry GOVERNMENT_ADMINISTRATION -10",
            "seniority individual_contributor +3",
            "total -7 clamped to 0",
        ),
    )


def test_scores_stay_in_range():
    for industry in ("COMPUTER_SOFTWARE", "NON_PROFIT_ORGANIZATION_MANAGEMENT", None):
        for employees in (None, 1, 60, 300, 7000, 50_000):
            for seniority in ("c_level", "individual_contributor", "unknown", None):
                score = score_fit(
                    industry=industry,
                    employees=employees,
                    country_code="US",
                    seniority=seniority,
                    function="sales",
                )
                assert 0 <= score.value <= 100


def _write(tmp_path, old: str, new: str):
    text = config_path("scoring.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "scoring.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_custom_rules(tmp_path):
    rules = load_scoring_rules(
        _write(tmp_path, "    COMPUTER_SOFTWARE: 25", "    COMPUTER_SOFTWARE: 5")
    )
    assert score_fit(**IDEAL, rules=rules).value == 80
    assert score_fit(**IDEAL).value == 100


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("    COMPUTER_SOFTWARE: 25", "    SOFTWARE_THINGS: 25", "industry.points.SOFTWARE_THINGS"),
        ("    c_level: 20", "    c_level: lots", "seniority.points.c_level"),
        ("    marketing: 20", "    marketeers: 20", "function.points.marketeers"),
        ("    US: 15", "    USA: 15", "country.points.USA"),
        ("    - {min: 200, points: 20}", "    - {min: 20, points: 20}", "employees.bands"),
        ("\ncountry:", "\ncountries:", "countries"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, old, new, key):
    path = _write(tmp_path, old, new)
    with pytest.raises(ConfigError) as error:
        load_scoring_rules(path)
    assert str(path) in str(error.value)
    assert key in str(error.value)
