"""An emulated Salesforce org: Bulk API 2.0 ingest jobs over Contact and Account, and sObject
reads by id or external id, with the org's state in the sandbox's SQLite database."""

from gtm_orchestration.sandbox.salesforce.api import (
    SALESFORCE_PREFIX,
    SalesforceOrg,
    salesforce_operator_router,
    salesforce_router,
)
from gtm_orchestration.sandbox.salesforce.errors import SalesforceApiError, salesforce_error_handler

__all__ = [
    "SALESFORCE_PREFIX",
    "SalesforceApiError",
    "SalesforceOrg",
    "salesforce_error_handler",
    "salesforce_operator_router",
    "salesforce_router",
]
