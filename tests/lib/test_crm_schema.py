"""CRM payloads: what the pipeline writes, and what makes a record worth sending again."""

from gtm_orchestration.lib.crm_schema import build_payloads, field_ownership

LEAD = {"email": "ana@acme.com", "lifecycle_stage": "lead", "title": "CMO", "mapping_version": 1}


def test_properties_the_crm_automation_or_reps_own_are_never_written() -> None:
    ownership = field_ownership()
    assert "hs_lead_status" in ownership.not_written("contacts")
    mapping = {"email": "email", "jobtitle": "title", "hs_lead_status": "lifecycle_stage"}
    (payload,) = build_payloads([LEAD], mapping, "contacts")
    assert payload.properties == {"email": "ana@acme.com", "jobtitle": "CMO"}


def test_a_new_mapping_version_alone_does_not_make_a_record_worth_resending() -> None:
    mapping = {"email": "email", "jobtitle": "title", "gtm_mapping_version": "mapping_version"}
    (v1,) = build_payloads([LEAD], mapping, "contacts")
    (v2,) = build_payloads([LEAD | {"mapping_version": 2}], mapping, "contacts")
    (retitled,) = build_payloads(
        [LEAD | {"title": "CEO", "mapping_version": 2}], mapping, "contacts"
    )
    assert v1.properties != v2.properties
    assert v1.digest == v2.digest
    assert retitled.digest != v1.digest
