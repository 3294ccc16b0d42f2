"""Which CRM the load writes leads and companies to (``GTM_CRM_DESTINATION``), and the
load assets that stand for it in the asset graph."""

from gtm_orchestration.settings import Settings

# The company and contact load assets of each destination, in load order.
CRM_LOADS = {
    "hubspot": ("hubspot_companies", "hubspot_contacts"),
    "salesforce": ("salesforce_accounts", "salesforce_contacts"),
}


def crm_destination() -> str:
    """The configured CRM: ``hubspot`` (default) or ``salesforce``."""
    return Settings.from_env().crm_destination


def crm_load_assets() -> tuple[str, str]:
    """The company and contact load assets of the configured CRM."""
    return CRM_LOADS[crm_destination()]
