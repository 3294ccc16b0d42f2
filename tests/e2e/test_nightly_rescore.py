"""The nightly re-score: engagement decays as signals age, the schedule targets the day that
just ended, and a night re-run sends nothing."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx

from gtm_orchestration.definitions import defs
from gtm_orchestration.lib.engagement import score_engagement
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, pipeline_instance
from tests.e2e.test_webhooks import post, receiver, webhook_runs  # noqa: F401 - fixture

MEETING_AT = datetime(2026, 10, 1, 15, 0, tzinfo=UTC)


def _score(crm: Crm, email: str) -> str | None:
    return crm.contact(email, "gtm_engagement_score")["properties"].get("gtm_engagement_score")


def _rescore(instance: dg.DagsterInstance, day: str) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("nightly_rescore").execute_in_process(
        instance=instance, partition_key=day, raise_on_error=False
    )


def test_scores_decay_night_by_night_and_a_rerun_sends_nothing(
    settings: Settings,
    crm: Crm,
    receiver: httpx.Client,  # noqa: F811 - fixture
) -> None:
    form = {"event_id": "f-1", "email": "jo@hooli.com", "first_name": "Jo", "title": "CMO"}
    assert post(receiver, "/webhooks/forms/leads", form).status_code == 200
    meeting = {
        "event_id": "m-1",
        "type": "meeting_booked",
        "email": "jo@hooli.com",
        "occurred_at": MEETING_AT.isoformat(),
    }
    assert post(receiver, "/webhooks/engagement/outreach", meeting).status_code == 200
    # Someone with signals but no contact is scored and not created.
    stranger = dict(meeting, event_id="m-2", email="nobody@else.io")
    assert post(receiver, "/webhooks/engagement/outreach", stranger).status_code == 200

    with pipeline_instance() as instance:
        webhook_runs(instance)
        real_time = _score(crm, "jo@hooli.com")

        assert _rescore(instance, "2026-10-01").success
        night_of_meeting = _score(crm, "jo@hooli.com")
        assert _rescore(instance, "2026-10-29").success
        four_weeks_on = _score(crm, "jo@hooli.com")
        writes = crm.write_requests()
        assert _rescore(instance, "2026-10-29").success
        assert crm.write_requests() == writes

    expected = {
        day: score_engagement([("meeting_booked", MEETING_AT)], as_of)[0]
        for day, as_of in (
            ("2026-10-01", datetime(2026, 10, 2, tzinfo=UTC)),
            ("2026-10-29", datetime(2026, 10, 30, tzinfo=UTC)),
        )
    }
    assert night_of_meeting == str(expected["2026-10-01"])
    assert four_weeks_on == str(expected["2026-10-29"])
    assert int(real_time) > int(night_of_meeting) > int(four_weeks_on) > 0
    assert crm.contact("nobody@else.io") is None


def test_the_nightly_schedules_target_the_day_that_ended() -> None:
    schedule = defs.resolve_schedule_def("nightly_rescore_schedule")
    tick = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    request = schedule(context)
    assert request.partition_key == (tick - timedelta(days=1)).date().isoformat()

    from gtm_orchestration.warehouse_definitions import defs as warehouse_defs

    build = warehouse_defs.resolve_schedule_def("nightly_warehouse_build")
    assert (build.cron_schedule, build.job_name) == ("0 3 * * *", "build_warehouse")
