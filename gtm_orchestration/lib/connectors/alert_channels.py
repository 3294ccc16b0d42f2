"""The alert channels: a Slack incoming webhook and the PagerDuty Events API v2, over httpx.

dagster-slack and dagster-pagerduty do not fit here. dagster-slack's resource posts with a
bot token through Slack's Web API (``chat.postMessage``), not to an incoming webhook URL,
which is what ``SLACK_WEBHOOK_URL`` is; dagster-pagerduty sends through ``pypd``, whose
Events API address is fixed to ``events.pagerduty.com``, so it could not be pointed at the
sandbox (or a proxy). Both channels are one JSON POST each: httpx with the connectors'
shared retries (429, 5xx and transport errors, with backoff) does it.

The webhook URL and the routing key are credentials: they are never logged, and problems
are reported without them.
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType
from typing import Self

import httpx

from gtm_orchestration.lib.alerts import (
    PAGERDUTY,
    SLACK,
    Notification,
    pagerduty_event,
    slack_message,
)
from gtm_orchestration.lib.connectors.retries import send_with_retries


class _HideWebhookUrls(logging.Filter):
    """Rewrites httpx's request log lines so that a webhook URL never reaches a log."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(url in message for url in self.urls):
            for url in self.urls:
                message = message.replace(url, "<alert webhook URL>")
            record.msg, record.args = message, ()
        return True


_HIDE_WEBHOOK_URLS = _HideWebhookUrls()
logging.getLogger("httpx").addFilter(_HIDE_WEBHOOK_URLS)


class AlertChannels:
    """Sends notifications to Slack and PagerDuty; a context manager holding one client."""

    def __init__(
        self,
        slack_webhook_url: str,
        pagerduty_events_url: str,
        pagerduty_routing_key: str,
        ui_url: str,
        *,
        max_attempts: int = 3,
        backoff_base_s: float = 0.5,
        timeout_s: float = 10.0,
    ) -> None:
        self._slack_webhook_url = slack_webhook_url
        # httpx logs every request's URL at INFO; a Slack webhook's path is its credential.
        _HIDE_WEBHOOK_URLS.urls.add(slack_webhook_url)
        self._pagerduty_events_url = pagerduty_events_url
        self._routing_key = pagerduty_routing_key
        self.ui_url = ui_url
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self._source = socket.gethostname()
        self._http = httpx.Client(timeout=timeout_s)

    def send(self, notification: Notification, held_back: int) -> str | None:
        """Deliver one notification; None when the channel took it, else what went wrong."""
        if notification.channel == SLACK:
            body = slack_message(notification, held_back, self.ui_url)
            return self._post("Slack", self._slack_webhook_url, body, ok=(200,))
        if notification.channel == PAGERDUTY:
            event = pagerduty_event(notification, self._routing_key, self._source, self.ui_url)
            return self._post("PagerDuty", self._pagerduty_events_url, event, ok=(202,))
        return f"unknown channel {notification.channel!r}"

    def _post(self, name: str, url: str, body: dict, ok: tuple[int, ...]) -> str | None:
        attempts = send_with_retries(
            lambda: self._http.post(url, json=body),
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
        )
        response = attempts.response
        if response is None:
            return f"{name} did not answer ({attempts.problem}, {attempts.tries} tries)"
        if response.status_code in ok:
            return None
        # The answer explains a refusal (Slack's error code, PagerDuty's errors); the URL,
        # which holds the credential, is left out.
        return f"{name} answered HTTP {response.status_code}: {response.text[:300]}"

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
