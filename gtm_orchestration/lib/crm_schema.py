"""The CRM portal's property schema and the payloads built against it."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
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


Policy = Literal["overwrite", "fill_if_empty", "never", "automation"]


class FieldOwnership(_Strict):
    version: int
    contacts: dict[str, Policy] = {}
    companies: dict[str, Policy] = {}

    def fill_if_empty(self, object_type: ObjectType) -> frozenset[str]:
        return self._with(object_type, "fill_if_empty")

    def not_written(self, object_type: ObjectType) -> frozenset[str]:
        """Properties the pipeline never writes: reps' own (``never``) and those the CRM's
        workflows set (``automation``)."""
        return self._with(object_type, "never") | self._with(object_type, "automation")

    def _with(self, object_type: ObjectType, policy: Policy) -> frozenset[str]:
        policies = getattr(self, object_type)
        return frozenset(p for p, found in policies.items() if found == policy)


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


# Properties that say which configuration produced a record rather than what the record is:
# a new mapping version that leaves a record's values as they were does not re-send it (the
# CRM keeps the version that last changed the record).
PROVENANCE_PROPERTIES = frozenset({"gtm_mapping_version"})


@dataclass(frozen=True)
class Payload:
    """What would be sent for one CRM record, keyed by its unique property."""

    key: str
    properties: dict[str, str]

    @property
    def digest(self) -> str:
        """Hash of the record's values, provenance properties left out; the sync ledger
        compares it with the last confirmed one to decide whether to send."""
        content = {k: v for k, v in self.properties.items() if k not in PROVENANCE_PROPERTIES}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def build_payloads(
    rows: pa.Table, mapping: dict[str, str], object_type: ObjectType
) -> list[Payload]:
    """CRM payloads for ``rows`` (a table of lead or company columns) through ``mapping``,
    one per row, in order.

    ``mapping`` is CRM property -> column. Values are formatted as ``format_value`` formats
    them. Empty values are left out, so a blank in the source never clears a value already
    in the CRM; so are the properties the field ownership says the pipeline never writes.
    """
    payloads = []
    for record in payload_table(rows, mapping, object_type).to_pylist():
        key = record.pop("key")
        payloads.append(Payload(key, {p: v for p, v in record.items() if v is not None}))
    return payloads


def _written(mapping: dict[str, str], object_type: ObjectType) -> dict[str, str]:
    """``mapping`` without the properties the field ownership says the pipeline never writes."""
    excluded = field_ownership().not_written(object_type)
    return {prop: column for prop, column in mapping.items() if prop not in excluded}


def payload_table(rows: pa.Table, mapping: dict[str, str], object_type: ObjectType) -> pa.Table:
    """The payload of each row of ``rows``, as a table.

    Returns a table of ``key`` (the unique property's value) and one text column per
    property the pipeline writes, in ``mapping``'s order, null where the payload leaves the
    property out; a row per row of ``rows``, in order. Text, whole numbers,
    booleans and whole-valued doubles are formatted by Arrow as format_value formats them
    (text as it is, numbers without '.0'); other values go through format_value once per
    distinct value.
    """
    mapping = _written(mapping, object_type)
    unique = portal_schema().objects[object_type].unique_property
    formatted = {
        column: _formatted(rows.column(column) if column in rows.column_names else None, rows)
        for column in dict.fromkeys(mapping.values())
    }
    key = formatted[mapping[unique]]
    if key.null_count:
        raise KeyError(f"{unique}: empty in {key.null_count} of {len(key)} {object_type} rows")
    return pa.table({"key": key} | {prop: formatted[column] for prop, column in mapping.items()})


def _formatted(values: pa.ChunkedArray | None, rows: pa.Table) -> pa.ChunkedArray:
    """format_value of each of ``values`` (a column of ``rows``; None for a missing one)."""
    if values is None:
        return pa.chunked_array([pa.nulls(rows.num_rows, pa.string())])
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        empty = pc.equal(values, "")
        return (
            pc.if_else(empty, None, values) if pc.any(empty).as_py() else values.cast(pa.string())
        )
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return values.cast(pa.string())
    whole = None
    if pa.types.is_floating(kind):
        whole = pc.and_(
            pc.and_(pc.is_finite(values), pc.equal(values, pc.trunc(values))),
            pc.less(pc.abs(values), 1e18),
        )
    rest = values if whole is None else pc.filter(values, pc.invert(pc.fill_null(whole, False)))
    distinct = pc.unique(rest)
    texts = pa.array([format_value(v) for v in distinct.to_pylist()], pa.string())
    by_rule = pc.take(texts, pc.index_in(values, distinct))
    if whole is None:
        return pa.chunked_array([by_rule]) if isinstance(by_rule, pa.Array) else by_rule
    as_integer = pc.cast(pc.if_else(whole, values, 0), pa.int64()).cast(pa.string())
    return pc.if_else(pc.fill_null(whole, False), as_integer, by_rule)


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
