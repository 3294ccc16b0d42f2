"""CRM payloads: what the pipeline writes, and what makes a record worth sending again."""

import pyarrow as pa

from gtm_orchestration.lib.crm_schema import Payload, build_payloads, field_ownership

LEAD = {"email": "ana@acme.com", "lifecycle_stage": "lead", "title": "CMO", "mapping_version": 1}


def test_properties_the_crm_automation_or_reps_own_are_never_written() -> None:
    ownership = field_ownership()
    assert "hs_lead_status" in ownership.not_written("contacts")
    mapping = {"email": "email", "jobtitle": "title", "hs_lead_status": "lifecycle_stage"}
    (payload,) = build_payloads(pa.Table.from_pylist([LEAD]), mapping, "contacts")
    assert payload.properties == {"email": "ana@acme.com", "jobtitle": "CMO"}


def _payload(lead: dict, mapping: dict[str, str]) -> Payload:
    (payload,) = build_payloads(pa.Table.from_pylist([lead]), mapping, "contacts")
    return payload


def test_a_new_mapping_version_alone_does_not_make_a_record_worth_resending() -> None:
    mapping = {"email": "email", "jobtitle": "title", "gtm_mapping_version": "mapping_version"}
    v1 = _payload(LEAD, mapping)
    v2 = _payload(LEAD | {"mapping_version": 2}, mapping)
    retitled = _payload(LEAD | {"title": "CEO", "mapping_version": 2}, mapping)
    assert v1.properties != v2.properties
    assert v1.digest == v2.digest
    assert retitled.digest != v1.digest
