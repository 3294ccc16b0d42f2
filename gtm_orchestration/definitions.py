"""The pipeline code location: extraction, transform and load, with their sensors.

The dbt models live in their own location (``warehouse_definitions``); ``workspace.yaml``
serves both.
"""

import dagster as dg

from gtm_orchestration.defs.execution import run_executor
from gtm_orchestration.defs.extract.assets import landed_data
from gtm_orchestration.defs.extract.crm_changes import CRM_CHANGE_DEFS
from gtm_orchestration.defs.extract.sensors import lead_file_sensor, webhook_batch_sensor
from gtm_orchestration.defs.jobs import (
    lead_pipeline_job,
    nightly_rescore_job,
    nightly_rescore_schedule,
)
from gtm_orchestration.defs.load.assets import (
    hubspot_companies,
    hubspot_contacts,
    hubspot_engagement,
    hubspot_engagement_rescore,
)
from gtm_orchestration.defs.load.destinations import crm_destination
from gtm_orchestration.defs.load.salesforce import SALESFORCE_LOADS
from gtm_orchestration.defs.load.sequencer import SEQUENCER_DEFS
from gtm_orchestration.defs.monitoring import MONITORING_DEFS
from gtm_orchestration.defs.resources import RESOURCES
from gtm_orchestration.defs.transform.assets import engagement_scores, transformed_leads
from gtm_orchestration.defs.transform.enrichment import ENRICHMENT_DEFS
from gtm_orchestration.defs.transform.rescore import engagement_rescores

# The CRM the leads and companies load into (GTM_CRM_DESTINATION). Engagement scores
# update HubSpot contacts only, so a Salesforce deployment has no engagement load.
CRM_LOADS = {
    "hubspot": [
        hubspot_companies,
        hubspot_contacts,
        hubspot_engagement,
        hubspot_engagement_rescore,
    ],
    "salesforce": SALESFORCE_LOADS,
}

defs = dg.Definitions(
    assets=[
        landed_data,
        transformed_leads,
        engagement_scores,
        engagement_rescores,
        *CRM_LOADS[crm_destination()],
        *CRM_CHANGE_DEFS["assets"],
        *SEQUENCER_DEFS["assets"],
    ],
    jobs=[
        lead_pipeline_job,
        nightly_rescore_job,
        *CRM_CHANGE_DEFS["jobs"],
        *ENRICHMENT_DEFS["jobs"],
        *SEQUENCER_DEFS["jobs"],
        *MONITORING_DEFS["jobs"],
    ],
    schedules=[
        nightly_rescore_schedule,
        *CRM_CHANGE_DEFS["schedules"],
        *ENRICHMENT_DEFS["schedules"],
        *SEQUENCER_DEFS["schedules"],
        *MONITORING_DEFS["schedules"],
    ],
    sensors=[
        lead_file_sensor,
        webhook_batch_sensor,
        *CRM_CHANGE_DEFS["sensors"],
        *ENRICHMENT_DEFS["sensors"],
        *MONITORING_DEFS["sensors"],
    ],
    resources={**RESOURCES, **MONITORING_DEFS["resources"]},
    # In the run's process by default, each step in its own with GTM_RUN_EXECUTOR=multiprocess.
    executor=run_executor(),
)
