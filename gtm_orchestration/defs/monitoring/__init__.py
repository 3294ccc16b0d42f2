"""Monitoring: alert sensors (Slack, PagerDuty) and the e-mail digests."""

from gtm_orchestration.defs.monitoring.digests import (
    daily_throughput_report,
    send_daily_throughput_report,
    send_weekly_error_summary,
    weekly_error_summary,
)
from gtm_orchestration.defs.monitoring.resources import AlertingResource, DigestMailResource
from gtm_orchestration.defs.monitoring.sensors import (
    alert_monitor,
    run_failure_alerts,
    run_timeout_alerts,
)

MONITORING_DEFS = {
    "jobs": [send_daily_throughput_report, send_weekly_error_summary],
    "schedules": [daily_throughput_report, weekly_error_summary],
    "sensors": [alert_monitor, run_failure_alerts, run_timeout_alerts],
    "resources": {"alerting": AlertingResource(), "digest_mail": DigestMailResource()},
}
