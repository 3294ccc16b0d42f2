"""HubSpot CRM v3 wire protocol: objects (contacts, companies), search, owners, properties.

Shapes follow HubSpot's public API so that HubSpot's own SDKs and other sync tools work
against the sandbox unchanged. Handlers are thin: they resolve the object type, validate
against the portal schema, call the store and render HubSpot's JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gtm_orchestration.lib.hubspot_time import iso_from_ms, now_ms
from gtm_orchestration.sandbox.hubspot.errors import (
    CONFLICT,
    OBJECT_NOT_FOUND,
    VALIDATION_ERROR,
    HubSpotError,
    batch_error,
    invalid_properties,
    invalid_properties_message,
)
from gtm_orchestration.sandbox.hubspot.owners import OWNERS
from gtm_orchestration.sandbox.hubspot.schema import (
    ObjectSchema,
    PortalSchema,
    PropertyDefinition,
    PropertyProblem,
    load_portal_schema,
)
from gtm_orchestration.sandbox.hubspot.search import (
    FilterGroup,
    SearchRequestError,
    SortSpec,
    build_predicate,
    build_query_predicate,
    sort_records,
)
from gtm_orchestration.sandbox.hubspot.store import (
    CrmRecord,
    CrmStore,
    PlannedWrite,
    UniqueValueConflict,
    WriteResult,
    WriteSource,
)
from gtm_orchestration.sandbox.state import SandboxDatabase

MAX_BATCH_INPUTS = 100
MAX_SEARCH_LIMIT = 200
# HubSpot's search pages no further than the 10,000th result.
MAX_SEARCH_RESULTS = 10_000
MAX_LIST_LIMIT = 100
# The sandbox's private app: the sourceId of every change written through the API.
SANDBOX_APP_ID = "1000001"
# Who may be named in X-Sandbox-Source; CRM_UI stands for a sales rep editing in the CRM.
WRITE_SOURCES = ("INTEGRATION", "CRM_UI", "IMPORT", "AUTOMATION")

PropertyValue = str | int | float | bool | None
PropertiesQuery = Annotated[list[str] | None, Query()]
HistoryQuery = Annotated[list[str] | None, Query(alias="propertiesWithHistory")]
IdPropertyQuery = Annotated[str | None, Query(alias="idProperty")]
# The portal's schema predates every record; properties report this as their creation time.
SCHEMA_SINCE = "2024-01-02T09:00:00.000Z"


class _Body(BaseModel):
    # HubSpot accepts numbers where it documents strings (ids, paging cursors).
    model_config = ConfigDict(populate_by_name=True, extra="ignore", coerce_numbers_to_str=True)


class ObjectInput(_Body):
    """``{"properties": {...}}`` of a create or update."""

    properties: dict[str, PropertyValue] = {}


class UpsertInput(_Body):
    """One input of ``batch/upsert``: the unique value as ``id`` and the values to write."""

    id: str
    id_property: str | None = Field(default=None, alias="idProperty")
    properties: dict[str, PropertyValue] = {}
    object_write_trace_id: str | None = Field(default=None, alias="objectWriteTraceId")


class UpdateInput(_Body):
    """One input of ``batch/update``."""

    id: str
    id_property: str | None = Field(default=None, alias="idProperty")
    properties: dict[str, PropertyValue] = {}
    object_write_trace_id: str | None = Field(default=None, alias="objectWriteTraceId")


class ObjectId(_Body):
    """One input of ``batch/read``."""

    id: str


class BatchUpsertRequest(_Body):
    inputs: list[UpsertInput]


class BatchCreateRequest(_Body):
    inputs: list[ObjectInput]


class BatchUpdateRequest(_Body):
    inputs: list[UpdateInput]


class BatchReadRequest(_Body):
    inputs: list[ObjectId]
    properties: list[str] = []
    properties_with_history: list[str] = Field(default=[], alias="propertiesWithHistory")
    id_property: str | None = Field(default=None, alias="idProperty")


class SearchRequest(_Body):
    filter_groups: list[FilterGroup] = Field(default=[], alias="filterGroups")
    sorts: list[SortSpec | str] = []
    properties: list[str] = []
    limit: int = 10
    after: str | None = None
    query: str | None = None


class HubSpotPortal:
    """The emulated portal: its property schema and its records."""

    def __init__(self, database: SandboxDatabase, schema: PortalSchema | None = None) -> None:
        self.schema = schema or load_portal_schema()
        self.store = CrmStore(
            database,
            {name: objects.unique_property for name, objects in self.schema.objects.items()},
        )

    def object_schema(self, object_type: str) -> ObjectSchema:
        """The schema of a URL's object type; a HubSpot 400 for a type the portal lacks."""
        schema = self.schema.resolve_object_type(object_type)
        if schema is None:
            raise HubSpotError(
                400, f"Unable to infer object type from: {object_type}", VALIDATION_ERROR
            )
        return schema


def hubspot_router(portal: HubSpotPortal) -> APIRouter:
    """The ``/crm/v3`` routes of the sandbox portal (``associations_router``: ``/crm/v4``)."""
    router = APIRouter(prefix="/crm/v3")
    store = portal.store

    @router.get("/objects/{object_type}")
    def list_objects(
        object_type: str,
        limit: int = 10,
        after: str | None = None,
        properties: PropertiesQuery = None,
        properties_with_history: HistoryQuery = None,
        archived: bool = False,
    ) -> JSONResponse:
        schema = portal.object_schema(object_type)
        # HubSpot caps a page rather than refusing a large limit.
        limit = max(1, min(limit, MAX_LIST_LIMIT))
        first_id = _cursor(after)
        # Nothing is ever archived in the sandbox, so the archived listing is empty.
        records = [] if archived else store.page(schema.object_type, first_id, limit + 1)
        page, rest = records[:limit], records[limit:]
        body: dict[str, object] = {
            "results": _objects_json(
                store, schema, page, _split(properties), _split(properties_with_history)
            )
        }
        if rest:
            next_after = str(rest[0].id)
            body["paging"] = {
                "next": {
                    "after": next_after,
                    "link": f"/crm/v3/objects/{schema.object_type}?after={next_after}",
                }
            }
        return JSONResponse(body)

    @router.post("/objects/{object_type}")
    def create_object(
        object_type: str,
        body: ObjectInput,
        x_sandbox_source: Annotated[str | None, Header()] = None,
        x_sandbox_user_id: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        schema = portal.object_schema(object_type)
        values = _valid_values(schema, body.properties)
        source = _write_source(x_sandbox_source, x_sandbox_user_id)
        result = _single_write(store, schema, PlannedWrite(None, values), source)
        return JSONResponse(_object_json(result.record, schema, list(values)), status_code=201)

    @router.get("/objects/{object_type}/{object_id}")
    def get_object(
        object_type: str,
        object_id: str,
        properties: PropertiesQuery = None,
        properties_with_history: HistoryQuery = None,
        id_property: IdPropertyQuery = None,
    ) -> JSONResponse:
        schema = portal.object_schema(object_type)
        record = _existing(store, schema, object_id, id_property)
        (body,) = _objects_json(
            store, schema, [record], _split(properties), _split(properties_with_history)
        )
        return JSONResponse(body)

    @router.patch("/objects/{object_type}/{object_id}")
    def update_object(
        object_type: str,
        object_id: str,
        body: ObjectInput,
        id_property: IdPropertyQuery = None,
        x_sandbox_source: Annotated[str | None, Header()] = None,
        x_sandbox_user_id: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        schema = portal.object_schema(object_type)
        record = _existing(store, schema, object_id, id_property)
        values = _valid_values(schema, body.properties)
        source = _write_source(x_sandbox_source, x_sandbox_user_id)
        result = _single_write(store, schema, PlannedWrite(record.id, values), source)
        return JSONResponse(_object_json(result.record, schema, list(values)))

    @router.post("/objects/{object_type}/batch/upsert")
    def batch_upsert(
        object_type: str,
        body: BatchUpsertRequest,
        x_sandbox_source: Annotated[str | None, Header()] = None,
        x_sandbox_user_id: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        started_at = now_ms()
        schema = portal.object_schema(object_type)
        _check_batch_size(len(body.inputs))
        source = _write_source(x_sandbox_source, x_sandbox_user_id)
        duplicates = _duplicates(schema.normalize_unique_value(item.id) for item in body.inputs)
        if duplicates:
            raise HubSpotError(
                400,
                f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique",
                VALIDATION_ERROR,
            )
        accepted: list[tuple[UpsertInput, str, dict[str, str]]] = []
        errors: list[dict[str, object]] = []
        for item in body.inputs:
            unique_value, values, error = _upsert_input(schema, item)
            if error is not None:
                errors.append(error)
            else:
                accepted.append((item, unique_value, values))
        written = store.upsert(
            schema.object_type, [(unique, values) for _, unique, values in accepted], source
        )
        results = []
        for (item, _, values), result in zip(accepted, written, strict=True):
            result_json = _object_json(
                result.record, schema, [schema.unique_property, *values], new=result.created
            )
            if item.object_write_trace_id is not None:
                result_json["objectWriteTraceId"] = item.object_write_trace_id
            results.append(result_json)
        return batch_response(results, errors, started_at)

    @router.post("/objects/{object_type}/batch/create")
    def batch_create(
        object_type: str,
        body: BatchCreateRequest,
        x_sandbox_source: Annotated[str | None, Header()] = None,
        x_sandbox_user_id: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        started_at = now_ms()
        schema = portal.object_schema(object_type)
        _check_batch_size(len(body.inputs))
        source = _write_source(x_sandbox_source, x_sandbox_user_id)
        # HubSpot refuses the whole batch when any input is invalid or already exists.
        planned = [
            PlannedWrite(None, _valid_values(schema, item.properties)) for item in body.inputs
        ]
        written = _batch_write(store, schema, planned, source)
        results = [
            _object_json(result.record, schema, list(plan.values))
            for plan, result in zip(planned, written, strict=True)
            if result is not None
        ]
        return batch_response(results, [], started_at, success_status=201)

    @router.post("/objects/{object_type}/batch/update")
    def batch_update(
        object_type: str,
        body: BatchUpdateRequest,
        x_sandbox_source: Annotated[str | None, Header()] = None,
        x_sandbox_user_id: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        started_at = now_ms()
        schema = portal.object_schema(object_type)
        _check_batch_size(len(body.inputs))
        source = _write_source(x_sandbox_source, x_sandbox_user_id)
        planned: list[PlannedWrite] = []
        missing: list[str] = []
        for item in body.inputs:
            values = _valid_values(schema, item.properties)
            by_unique = _by_unique_property(schema, item.id_property)
            record = store.find(schema.object_type, item.id, by_unique)
            if record is None:
                missing.append(item.id)
            else:
                planned.append(PlannedWrite(record.id, values))
        written = _batch_write(store, schema, planned, source)
        results = [
            _object_json(result.record, schema, list(plan.values))
            for plan, result in zip(planned, written, strict=True)
            if result is not None
        ]
        return batch_response(results, _not_found_errors(schema, missing), started_at)

    @router.post("/objects/{object_type}/batch/read")
    def batch_read(object_type: str, body: BatchReadRequest) -> JSONResponse:
        started_at = now_ms()
        schema = portal.object_schema(object_type)
        _check_batch_size(len(body.inputs))
        by_unique = _by_unique_property(schema, body.id_property)
        keys = list(dict.fromkeys(item.id for item in body.inputs))
        found = store.find_many(schema.object_type, keys, by_unique)
        missing = [key for key in keys if key not in found]
        records = list({record.id: record for record in found.values()}.values())
        results = _objects_json(
            store, schema, records, body.properties, body.properties_with_history
        )
        return batch_response(results, _not_found_errors(schema, missing), started_at)

    @router.post("/objects/{object_type}/search")
    def search_objects(object_type: str, body: SearchRequest) -> JSONResponse:
        schema = portal.object_schema(object_type)
        if not 0 <= body.limit <= MAX_SEARCH_LIMIT:
            raise HubSpotError(
                400,
                f"limit must be between 0 and {MAX_SEARCH_LIMIT}, got {body.limit}",
                VALIDATION_ERROR,
            )
        offset = _search_offset(body.after)
        try:
            matches = build_predicate(body.filter_groups, schema)
            candidates = store.all_records(schema.object_type)
            records = [record for record in candidates if matches(record)]
            if body.query:
                matches_query = build_query_predicate(body.query, schema)
                records = [record for record in records if matches_query(record)]
            records = sort_records(records, body.sorts, schema)
        except SearchRequestError as problem:
            raise HubSpotError(400, str(problem), VALIDATION_ERROR) from problem
        page = records[offset : offset + body.limit]
        response: dict[str, object] = {
            "total": len(records),
            "results": _objects_json(store, schema, page, body.properties, []),
        }
        next_offset = offset + body.limit
        if body.limit and next_offset < min(len(records), MAX_SEARCH_RESULTS):
            response["paging"] = {"next": {"after": str(next_offset)}}
        return JSONResponse(response)

    @router.get("/owners")
    def list_owners(
        email: str | None = None, limit: int = 100, after: str | None = None, archived: bool = False
    ) -> JSONResponse:
        owners = [] if archived else list(OWNERS)
        if email:
            owners = [owner for owner in owners if owner.email == email.strip().lower()]
        offset = _cursor(after, first=0)
        limit = max(1, min(limit, 500))
        body: dict[str, object] = {
            "results": [owner.as_hubspot() for owner in owners[offset : offset + limit]]
        }
        if offset + limit < len(owners):
            body["paging"] = {"next": {"after": str(offset + limit)}}
        return JSONResponse(body)

    @router.get("/owners/{owner_id}")
    def get_owner(
        owner_id: str, id_property: Annotated[str, Query(alias="idProperty")] = "id"
    ) -> JSONResponse:
        for owner in OWNERS:
            if owner_id == (str(owner.user_id) if id_property == "userId" else owner.id):
                return JSONResponse(owner.as_hubspot())
        raise HubSpotError(404, f"Owner {owner_id} not found", OBJECT_NOT_FOUND)

    @router.get("/properties/{object_type}")
    def list_properties(object_type: str) -> JSONResponse:
        schema = portal.object_schema(object_type)
        definitions = schema.properties.values()
        return JSONResponse({"results": [_property_json(schema, d) for d in definitions]})

    @router.get("/properties/{object_type}/{property_name}")
    def get_property(object_type: str, property_name: str) -> JSONResponse:
        schema = portal.object_schema(object_type)
        definition = schema.properties.get(property_name)
        if definition is None:
            raise HubSpotError(
                404,
                f"Unable to find property {property_name} for object type {schema.object_type}",
                OBJECT_NOT_FOUND,
            )
        return JSONResponse(_property_json(schema, definition))

    return router


# Request handling ----------------------------------------------------------------------------


def _split(values: Iterable[str] | None) -> list[str]:
    """Query lists arrive repeated (``?properties=a&properties=b``) or comma-joined."""
    return [name.strip() for value in values or () for name in value.split(",") if name.strip()]


def _cursor(after: str | None, first: int = 1) -> int:
    if after is None or after == "":
        return first
    if not after.strip().isdigit():
        raise HubSpotError(400, f"after must be a paging cursor, got {after!r}", VALIDATION_ERROR)
    return int(after)


def _search_offset(after: str | None) -> int:
    offset = _cursor(after, first=0)
    if offset >= MAX_SEARCH_RESULTS:
        raise HubSpotError(
            400,
            f"Search results are limited to {MAX_SEARCH_RESULTS} records; after={offset}",
            VALIDATION_ERROR,
        )
    return offset


def _check_batch_size(count: int) -> None:
    if count > MAX_BATCH_INPUTS:
        raise HubSpotError(
            400,
            f"Batch input size {count} exceeds the limit of {MAX_BATCH_INPUTS} inputs",
            VALIDATION_ERROR,
        )


def _duplicates(keys: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    duplicates: list[str] = []
    for key in keys:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    return duplicates


def _write_source(source_header: str | None, user_header: str | None) -> WriteSource:
    source_type = (source_header or "INTEGRATION").strip().upper()
    if source_type not in WRITE_SOURCES:
        raise HubSpotError(
            400,
            f"X-Sandbox-Source must be one of {', '.join(WRITE_SOURCES)}, got {source_header!r}",
            VALIDATION_ERROR,
        )
    user_id = None
    if user_header:
        if not user_header.strip().isdigit():
            raise HubSpotError(
                400, f"X-Sandbox-User-Id must be a number, got {user_header!r}", VALIDATION_ERROR
            )
        user_id = int(user_header)
    source_id = SANDBOX_APP_ID if source_type == "INTEGRATION" else None
    return WriteSource(source_type, source_id, user_id)


def _by_unique_property(schema: ObjectSchema, id_property: str | None) -> bool:
    """Whether ids name records by their unique property (True) or by record id (False)."""
    if id_property in (None, "", "hs_object_id"):
        return False
    if id_property == schema.unique_property:
        return True
    raise HubSpotError(
        400,
        f"{id_property} is not a unique property of {schema.object_type}; "
        f"use hs_object_id or {schema.unique_property}",
        VALIDATION_ERROR,
    )


def _existing(
    store: CrmStore, schema: ObjectSchema, object_id: str, id_property: str | None
) -> CrmRecord:
    record = store.find(schema.object_type, object_id, _by_unique_property(schema, id_property))
    if record is None:
        raise HubSpotError(404, "resource not found", OBJECT_NOT_FOUND)
    return record


def _valid_values(schema: ObjectSchema, raw: Mapping[str, PropertyValue]) -> dict[str, str]:
    values, problems = schema.normalize_values(raw)
    if problems:
        raise invalid_properties(problems)
    return values


def _upsert_input(
    schema: ObjectSchema, item: UpsertInput
) -> tuple[str, dict[str, str], dict[str, object] | None]:
    """The unique value and values of one upsert input, or the 207 error entry refusing it."""
    context = {"id": [item.id]}
    if item.id_property != schema.unique_property:
        message = (
            f"idProperty must be {schema.unique_property!r} to upsert {schema.object_type}, "
            f"got {item.id_property!r}"
        )
        return "", {}, batch_error(VALIDATION_ERROR, message, context)
    unique_value = schema.normalize_unique_value(item.id)
    values, problems = schema.normalize_values(item.properties)
    if not unique_value:
        problems.append(
            PropertyProblem(schema.unique_property, "INVALID_ID", "The id of an upsert is empty")
        )
    sent_unique = values.pop(schema.unique_property, unique_value)
    if sent_unique != unique_value:
        problems.append(
            PropertyProblem(
                schema.unique_property,
                "ID_MISMATCH",
                f"{schema.unique_property} {sent_unique!r} differs from the input id {item.id!r}",
            )
        )
    if problems:
        error = batch_error(
            VALIDATION_ERROR, invalid_properties_message(problems), context, problems
        )
        return "", {}, error
    return unique_value, values, None


def _single_write(
    store: CrmStore, schema: ObjectSchema, plan: PlannedWrite, source: WriteSource
) -> WriteResult:
    (result,) = _batch_write(store, schema, [plan], source)
    if result is None:
        raise HubSpotError(404, "resource not found", OBJECT_NOT_FOUND)
    return result


def _batch_write(
    store: CrmStore, schema: ObjectSchema, planned: Sequence[PlannedWrite], source: WriteSource
) -> list[WriteResult | None]:
    try:
        return store.write(schema.object_type, planned, source)
    except UniqueValueConflict as conflict:
        raise HubSpotError(
            409, f"{schema.singular} already exists. Existing ID: {conflict.existing_id}", CONFLICT
        ) from conflict


def _not_found_errors(schema: ObjectSchema, missing: Sequence[str]) -> list[dict[str, object]]:
    if not missing:
        return []
    message = (
        f"Could not get some {schema.singular.upper()} objects, they may be deleted or not "
        "exist. Check that ids are valid."
    )
    return [batch_error(OBJECT_NOT_FOUND, message, {"ids": list(missing)})]


# Rendering -----------------------------------------------------------------------------------


def _returned_names(schema: ObjectSchema, names: Sequence[str]) -> list[str]:
    """Requested properties the portal knows, or HubSpot's defaults, plus the always-returned."""
    if names:
        requested = [name for name in names if name in schema.properties]
    else:
        requested = list(schema.default_returned)
    return list(dict.fromkeys([*requested, *schema.always_returned]))


def _object_json(
    record: CrmRecord,
    schema: ObjectSchema,
    names: Sequence[str],
    new: bool | None = None,
    history: Mapping[str, Sequence[object]] | None = None,
) -> dict[str, object]:
    """HubSpot's ``SimplePublicObject`` (or ``SimplePublicUpsertObject`` when ``new`` is set)."""
    body: dict[str, object] = {
        "id": str(record.id),
        "properties": {
            name: record.properties.get(name) for name in _returned_names(schema, names)
        },
        "createdAt": iso_from_ms(record.created_at_ms),
        "updatedAt": iso_from_ms(record.updated_at_ms),
        "archived": False,
    }
    if history is not None:
        body["propertiesWithHistory"] = history
    if new is not None:
        body["new"] = new
    return body


def _objects_json(
    store: CrmStore,
    schema: ObjectSchema,
    records: Sequence[CrmRecord],
    names: Sequence[str],
    names_with_history: Sequence[str],
) -> list[dict[str, object]]:
    with_history = [name for name in names_with_history if name in schema.properties]
    histories = store.history((record.id for record in records), with_history)
    return [
        _object_json(
            record,
            schema,
            names,
            history={
                name: [entry.as_hubspot() for entry in entries]
                for name, entries in histories[record.id].items()
            }
            if with_history
            else None,
        )
        for record in records
    ]


def batch_response(
    results: list[dict[str, object]],
    errors: list[dict[str, object]],
    started_at: int,
    success_status: int = 200,
) -> JSONResponse:
    """HubSpot's batch answer: ``success_status`` when all went through, 207 with errors if not."""
    body: dict[str, object] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_from_ms(started_at),
        "completedAt": iso_from_ms(now_ms()),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return JSONResponse(body, status_code=207)
    return JSONResponse(body, status_code=success_status)


_FIELD_TYPES = {"string": "text", "number": "number", "enumeration": "select", "datetime": "date"}


def _property_json(schema: ObjectSchema, definition: PropertyDefinition) -> dict[str, object]:
    """HubSpot's ``Property`` shape for the properties API."""
    if definition.options_from_owners:
        options = [(f"{owner.first_name} {owner.last_name}", owner.id) for owner in OWNERS]
    else:
        options = [(value, value) for value in definition.options or ()]
    hubspot_defined = not definition.name.startswith("gtm_")
    body: dict[str, object] = {
        "name": definition.name,
        "label": definition.name.replace("_", " ").title(),
        "type": definition.type,
        "fieldType": _FIELD_TYPES[definition.type],
        "description": "",
        "groupName": f"{schema.singular.lower()}information",
        "options": [
            {"label": label, "value": value, "displayOrder": order, "hidden": False}
            for order, (label, value) in enumerate(options)
        ],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": definition.options_from_owners,
        "hasUniqueValue": definition.unique,
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "formField": not definition.read_only,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": definition.read_only,
        },
        "createdAt": SCHEMA_SINCE,
        "updatedAt": SCHEMA_SINCE,
        "archived": False,
    }
    if definition.options_from_owners:
        body["referencedObjectType"] = "OWNER"
    return body
