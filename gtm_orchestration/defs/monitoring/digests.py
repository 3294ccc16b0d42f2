"""The informational digests: jobs that e-mail the daily throughput report and the weekly
error summary (or write them to the log), and their schedules (``config/alerts.yaml``)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import Field

from gtm_orchestration.defs.monitoring.resources import AlertingResource, DigestMailResource
from gtm_orchestration.defs.monitoring.runs import run_counts
from gtm_orchestration.defs.monitoring.state import read_alert_state
from gtm_orchestration.defs.resources import WarehouseResource
from gtm_orchestration.lib.alerts import DigestSchedule, default_alert_thresholds
from gtm_orchestration.lib.digests import error_summary, throughput_report
from gtm_orchestration.lib.warehouse import Warehouse


class DigestConfig(dg.Config):
    """The period a digest covers."""

    period_end: str | None = Field(
        default=None,
        description="The day (YYYY-MM-DD, in the schedule's time zone) the period ends "
        "before; default today.",
    )


def _period(config: DigestConfig, schedule: DigestSchedule, days: int) -> tuple[date, date]:
    zone = ZoneInfo(schedule.timezone)
    end_day = (
        date.fromisoformat(config.period_end) if config.period_end else datetime.now(zone).date()
    )
    return end_day - timedelta(days=days), end_day


def _bounds(first: date, end: date, schedule: DigestSchedule) -> tuple[datetime, datetime]:
    zone = ZoneInfo(schedule.timezone)
    return datetime.combine(first, time(), zone), datetime.combine(end, time(), zone)


@dg.op(description="E-mails what the pipeline moved the day before (or logs it).")
def daily_throughput_digest(
    context: dg.OpExecutionContext,
    config: DigestConfig,
    warehouse: WarehouseResource,
    digest_mail: DigestMailResource,
    alerting: AlertingResource,
) -> None:
    schedule = alerting.thresholds().informational.daily_throughput_report
    day, end_day = _period(config, schedule, days=1)
    start, end = _bounds(day, end_day, schedule)
    runs = run_counts(context.instance, start, end)
    with Warehouse(warehouse.resolved_url).connect(read_only=True) as con:
        digest = throughput_report(con, day, start, end, runs, alerting.ui_url)
    where = digest_mail.deliver(digest, context.log.info)
    context.log.info(f"{digest.subject}: {where}")


@dg.op(description="E-mails what went wrong in the seven days before (or logs it).")
def weekly_error_digest(
    context: dg.OpExecutionContext,
    config: DigestConfig,
    warehouse: WarehouseResource,
    digest_mail: DigestMailResource,
    alerting: AlertingResource,
) -> None:
    schedule = alerting.thresholds().informational.weekly_error_summary
    first_day, end_day = _period(config, schedule, days=7)
    start, end = _bounds(first_day, end_day, schedule)
    runs = run_counts(context.instance, start, end)
    history = read_alert_state(context.instance).history
    with Warehouse(warehouse.resolved_url).connect(read_only=True) as con:
        digest = error_summary(
            con,
            first_day,
            end_day - timedelta(days=1),
            start,
            end,
            runs,
            history,
            alerting.ui_url,
        )
    where = digest_mail.deliver(digest, context.log.info)
    context.log.info(f"{digest.subject}: {where}")


@dg.job(description="E-mail the daily throughput report (GTM_DIGEST_TO).")
def send_daily_throughput_report() -> None:
    daily_throughput_digest()


@dg.job(description="E-mail the weekly error summary (GTM_DIGEST_TO).")
def send_weekly_error_summary() -> None:
    weekly_error_digest()


def _digest_schedule(
    name: str, job: dg.JobDefinition, op_name: str, schedule: DigestSchedule, description: str
) -> dg.ScheduleDefinition:
    zone = ZoneInfo(schedule.timezone)

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=schedule.cron,
        execution_timezone=schedule.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = context.scheduled_execution_time or datetime.now(zone)
        end_day = tick.astimezone(zone).date()
        return dg.RunRequest(
            run_key=f"{name}:{end_day.isoformat()}",
            run_config={"ops": {op_name: {"config": {"period_end": end_day.isoformat()}}}},
            tags={"gtm/trigger": name},
        )

    return _schedule


_INFORMATIONAL = default_alert_thresholds().informational

daily_throughput_report = _digest_schedule(
    "daily_throughput_report",
    send_daily_throughput_report,
    "daily_throughput_digest",
    _INFORMATIONAL.daily_throughput_report,
    "The daily throughput report of the day before, by e-mail (config/alerts.yaml).",
)

weekly_error_summary = _digest_schedule(
    "weekly_error_summary",
    send_weekly_error_summary,
    "weekly_error_digest",
    _INFORMATIONAL.weekly_error_summary,
    "The weekly error summary of the seven days before, by e-mail (config/alerts.yaml).",
)
