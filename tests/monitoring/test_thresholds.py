"""config/alerts.yaml: validated on load, with errors naming the file, the key and what was
expected; every load asset of the pipeline belongs to a destination."""

from pathlib import Path

import pytest
import yaml

from gtm_orchestration.definitions import defs
from gtm_orchestration.lib.alerts import default_alert_thresholds, load_alert_thresholds
from gtm_orchestration.lib.config import ConfigError
from tests.monitoring.support import write_thresholds


def test_the_bundled_thresholds_follow_the_escalation_policy() -> None:
    thresholds = default_alert_thresholds()
    assert thresholds.critical.zero_throughput.quiet_minutes == 15
    assert thresholds.warning.error_rate.max_share == 0.05
    assert thresholds.warning.latency.sla_minutes == 5
    assert thresholds.informational.daily_throughput_report.cron == "0 7 * * *"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"warning": {"error_rate": {"max_share": 5}}},
            "warning.error_rate.max_share: Input should be less than 1 (found 5)",
        ),
        (
            {"critical": {"zero_throughput": {"expected": {"start": "19:00", "end": "07:00"}}}},
            "critical.zero_throughput.expected: Value error, expected start (19:00) before "
            "end (07:00)",
        ),
        (
            {"critical": {"zero_throughput": {"expected": {"start": "7am"}}}},
            "critical.zero_throughput.expected.start: Value error, expected a time of day as "
            "HH:MM, 00:00 to 24:00 (found '7am')",
        ),
        (
            {"informational": {"weekly_error_summary": {"timezone": "Mars/Olympus"}}},
            "informational.weekly_error_summary.timezone: Value error, expected an IANA time "
            "zone such as UTC or America/New_York (found 'Mars/Olympus')",
        ),
        (
            {"critical": {"zero_throughput": {"expected": {"days": ["monday"]}}}},
            "critical.zero_throughput.expected.days[0]: Input should be 'mon', 'tue', 'wed', "
            "'thu', 'fri', 'sat' or 'sun' (found 'monday')",
        ),
        (
            {"critical": {"destination_failing": {"destinations": {"crm": ["hubspot_contacts"]}}}},
            "load asset 'hubspot_contacts' is listed under 'hubspot' and 'crm': expected one "
            "destination per asset",
        ),
        (
            {"delivery": {"slack_per_hour": 0}},
            "delivery.slack_per_hour: Input should be greater than or equal to 1 (found 0)",
        ),
    ],
)
def test_a_wrong_value_is_reported_with_the_file_the_key_and_the_expectation(
    tmp_path: Path, changes: dict, expected: str
) -> None:
    path = write_thresholds(tmp_path / "alerts.yaml", changes)
    with pytest.raises(ConfigError) as error:
        load_alert_thresholds(path)
    assert str(error.value).startswith(f"{path}: ")
    assert expected in str(error.value)


def test_an_unknown_key_is_reported(tmp_path: Path) -> None:
    path = write_thresholds(tmp_path / "alerts.yaml")
    config = yaml.safe_load(path.read_text())
    config["warning"]["error_rates"] = config["warning"].pop("error_rate")
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_alert_thresholds(path)
    assert "warning.error_rate: Field required" in str(error.value)
    assert "warning.error_rates: Extra inputs are not permitted" in str(error.value)


def test_every_load_asset_belongs_to_one_destination() -> None:
    destinations = default_alert_thresholds().critical.destination_failing.destinations
    mapped = {asset for assets in destinations.values() for asset in assets}
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    loads = {k for k, g in groups.items() if g == "load"} | {"hubspot_engagement_rescore"}
    assert mapped == loads
