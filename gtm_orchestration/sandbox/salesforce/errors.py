"""Salesforce-shaped error answers: a JSON array of ``{"errorCode", "message"}``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

INVALID_SESSION_ID = "INVALID_SESSION_ID"
NOT_FOUND = "NOT_FOUND"
INVALID_JOB = "INVALIDJOB"
INVALID_JOB_STATE = "INVALIDJOBSTATE"
BULK_API_ERROR = "BULK_API_ERROR"
JSON_PARSER_ERROR = "JSON_PARSER_ERROR"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
UNKNOWN_EXCEPTION = "UNKNOWN_EXCEPTION"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"

SESSION_MESSAGE = "Session expired or invalid"
NOT_FOUND_MESSAGE = "The requested resource does not exist"


class SalesforceApiError(Exception):
    """An error answer, raised by the handlers and rendered as Salesforce renders it."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message

    def response(self) -> JSONResponse:
        return error_response(self.status_code, self.error_code, self.message)


def error_response(status_code: int, error_code: str, message: str) -> JSONResponse:
    """Salesforce's error body: a list holding one error."""
    return JSONResponse([{"errorCode": error_code, "message": message}], status_code=status_code)


async def salesforce_error_handler(_: Request, error: Exception) -> JSONResponse:
    """The app's handler of ``SalesforceApiError``."""
    if not isinstance(error, SalesforceApiError):
        raise error
    return error.response()
