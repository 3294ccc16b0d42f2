"""HubSpot-shaped error answers: ``{"status": "error", "message", "correlationId", "category"}``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from gtm_orchestration.sandbox.hubspot.schema import PropertyProblem

VALIDATION_ERROR = "VALIDATION_ERROR"
OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"
CONFLICT = "CONFLICT"
INVALID_AUTHENTICATION = "INVALID_AUTHENTICATION"
INTERNAL_ERROR = "INTERNAL_ERROR"

MISSING_TOKEN_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
RATE_LIMIT_MESSAGE = "You have reached your ten_secondly_rolling limit."
DAILY_LIMIT_MESSAGE = "You have reached your daily limit."


class HubSpotError(Exception):
    """An error answer: raised by the API handlers, rendered with the request's correlation id."""

    def __init__(
        self,
        status_code: int,
        message: str,
        category: str,
        errors: Sequence[dict[str, object]] = (),
        context: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.category = category
        self.errors = list(errors)
        self.context = context

    def body(self, correlation_id: str) -> dict[str, object]:
        """The JSON body HubSpot sends for this error."""
        body = error_body(self.message, self.category, correlation_id)
        if self.errors:
            body["errors"] = self.errors
        if self.context:
            body["context"] = self.context
        return body


def error_body(message: str, category: str, correlation_id: str) -> dict[str, object]:
    """HubSpot's basic error body."""
    return {
        "status": "error",
        "message": message,
        "correlationId": correlation_id,
        "category": category,
    }


def rate_limit_body(
    correlation_id: str, group_name: str, policy_name: str = "TEN_SECONDLY_ROLLING"
) -> dict[str, object]:
    """The body of HubSpot's 429, which names the exhausted policy instead of a category."""
    message = RATE_LIMIT_MESSAGE if policy_name == "TEN_SECONDLY_ROLLING" else DAILY_LIMIT_MESSAGE
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id,
        "policyName": policy_name,
        "groupName": group_name,
    }


def invalid_properties_message(problems: Sequence[PropertyProblem]) -> str:
    """HubSpot's message for refused values, quoting each validation result as JSON."""
    results = json.dumps([problem.as_validation_result() for problem in problems])
    return f"Property values were not valid: {results}"


def invalid_properties(problems: Sequence[PropertyProblem]) -> HubSpotError:
    """The 400 HubSpot answers a single create or update with refused property values."""
    return HubSpotError(
        400,
        invalid_properties_message(problems),
        VALIDATION_ERROR,
        errors=[problem.as_error_detail() for problem in problems],
    )


def batch_error(
    category: str,
    message: str,
    context: dict[str, list[str]],
    problems: Sequence[PropertyProblem] = (),
) -> dict[str, object]:
    """One entry of a 207 answer's ``errors`` list (HubSpot's ``StandardError``)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [problem.as_error_detail() for problem in problems],
        "links": {},
    }
