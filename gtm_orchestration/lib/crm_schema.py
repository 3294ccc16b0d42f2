"""The CRM portal's property schema and the payloads built against it."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from gtm_orchestration.lib.config import config_path, load_model

ObjectType = Literal["contacts", "companies"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PropertySpec(_Strict):
    type: Literal["string", "number", "enumeration", "datetime"]
    options: tuple[str, ...] = ()
    options_from: Literal["owners"] | None = None


class ObjectSpec(_Strict):
    unique_property: str
    properties: dict[str, PropertySpec]


class PortalSchema(_Strict):
    version: int
    objects: dict[ObjectType, ObjectSpec]


class FieldOwnership(_Strict):
    version: int
    contacts: dict[str, Literal["overwrite", "fill_if_empty"]] = {}
    companies: dict[str, Literal["overwrite", "fill_if_empty"]] = {}

    def fill_if_empty(self, object_type: ObjectType) -> frozenset[str]:
        policies = getattr(self, object_type)
        return frozenset(p for p, policy in policies.items() if policy == "fill_if_empty")


@cache
def field_ownership() -> FieldOwnership:
    """The per-property policies in ``config/crm/field_ownership.yaml``."""
    return load_model(config_path("crm", "field_ownership.yaml"), FieldOwnership)


@cache
def portal_schema() -> PortalSchema:
    """The property schema in ``config/crm/hubspot_properties.yaml``."""
    return load_model(config_path("crm", "hubspot_properties.yaml"), PortalSchema)


def format_value(value: object) -> str | None:
    """A value as the CRM's wire format wants it: strings, integral numbers without '.0'."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if text != "" else None


@dataclass(frozen=True)
class Payload:
    """What would be sent for one CRM record, keyed by its unique property."""

    key: str
    properties: dict[str, str]

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.properties, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def build_payloads(
    rows: list[dict[str, object]], mapping: dict[str, str], object_type: ObjectType
) -> list[Payload]:
    """CRM payloads for ``rows`` (dicts of lead/company columns) through ``mapping``.

    ``mapping`` is CRM property -> column. Empty values are left out, so a blank in the
    source never clears a value already in the CRM.
    """
    unique = portal_schema().objects[object_type].unique_property
    payloads = []
    for row in rows:
        properties = {}
        for prop, column in mapping.items():
            value = format_value(row.get(column))
            if value is not None:
                properties[prop] = value
        payloads.append(Payload(properties[unique], properties))
    return payloads


def invalid_values(
    object_type: ObjectType, properties: dict[str, str], owner_ids: frozenset[str] | None = None
) -> list[str]:
    """Problems the CRM would reject in ``properties``: unknown properties, bad options."""
    spec = portal_schema().objects[object_type].properties
    problems = []
    for prop, value in properties.items():
        if prop not in spec:
            problems.append(f"{prop}: no such {object_type} property")
            continue
        prop_spec = spec[prop]
        if prop_spec.type == "enumeration" and prop_spec.options and value not in prop_spec.options:
            problems.append(f"{prop}: {value!r} is not one of the allowed options")
        if prop_spec.options_from == "owners" and owner_ids is not None and value not in owner_ids:
            problems.append(f"{prop}: {value!r} is not an owner of the portal")
        if prop_spec.type == "number":
            try:
                float(value)
            except ValueError:
                problems.append(f"{prop}: {value!r} is not a number")
    return problems
