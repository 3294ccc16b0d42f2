"""HubSpot CRM v4 associations: default (unlabeled) associations between contacts and companies.

``POST /crm/v4/associations/{from}/{to}/batch/associate/default`` creates them (an existing
one is kept, so a re-sent batch changes nothing), ``POST .../batch/read`` and
``GET /crm/v4/objects/{type}/{id}/associations/{to}`` read them, from either side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gtm_orchestration.lib.hubspot_time import now_ms
from gtm_orchestration.sandbox.hubspot.api import batch_response
from gtm_orchestration.sandbox.hubspot.errors import (
    OBJECT_NOT_FOUND,
    VALIDATION_ERROR,
    HubSpotError,
    batch_error,
)

if TYPE_CHECKING:
    from gtm_orchestration.sandbox.hubspot.api import HubSpotPortal
    from gtm_orchestration.sandbox.hubspot.schema import ObjectSchema

# HubSpot's limits: 2,000 pairs in one association batch, 1,000 ids in one batch read,
# 500 associations a page.
MAX_ASSOCIATE_INPUTS = 2_000
MAX_READ_INPUTS = 1_000
MAX_PAGE = 500
# The default association type of each ordered pair of object types (HUBSPOT_DEFINED).
DEFAULT_TYPES: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
}
CATEGORY = "HUBSPOT_DEFINED"


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", coerce_numbers_to_str=True)


class ObjectRef(_Body):
    id: str


class AssociationInput(_Body):
    """One pair of ``batch/associate/default``."""

    from_: ObjectRef = Field(alias="from")
    to: ObjectRef


class AssociateRequest(_Body):
    inputs: list[AssociationInput]


class ReadInput(_Body):
    id: str


class ReadRequest(_Body):
    inputs: list[ReadInput]


def associations_router(portal: HubSpotPortal) -> APIRouter:
    """The ``/crm/v4`` association routes of the sandbox portal."""
    router = APIRouter(prefix="/crm/v4")
    store = portal.store

    def pair_types(from_type: str, to_type: str) -> tuple[ObjectSchema, ObjectSchema, int]:
        source, target = portal.object_schema(from_type), portal.object_schema(to_type)
        type_id = DEFAULT_TYPES.get((source.object_type, target.object_type))
        if type_id is None:
            raise HubSpotError(
                400,
                f"There is no default association from {source.object_type} "
                f"to {target.object_type}",
                VALIDATION_ERROR,
            )
        return source, target, type_id

    @router.post("/associations/{from_object_type}/{to_object_type}/batch/associate/default")
    def associate_default(
        from_object_type: str, to_object_type: str, body: AssociateRequest
    ) -> JSONResponse:
        started_at = now_ms()
        source, target, type_id = pair_types(from_object_type, to_object_type)
        _check_size(len(body.inputs), MAX_ASSOCIATE_INPUTS)
        from_ids = {int(i.from_.id) for i in body.inputs if i.from_.id.isdigit()}
        to_ids = {int(i.to.id) for i in body.inputs if i.to.id.isdigit()}
        known_from = store.existing_ids(source.object_type, from_ids)
        known_to = store.existing_ids(target.object_type, to_ids)
        pairs: list[tuple[int, int]] = []
        errors: list[dict[str, object]] = []
        for item in body.inputs:
            missing = [
                f"{schema.singular} {ref.id}"
                for schema, ref, known in (
                    (source, item.from_, known_from),
                    (target, item.to, known_to),
                )
                if not (ref.id.isdigit() and int(ref.id) in known)
            ]
            if missing:
                context = {"fromObjectId": [item.from_.id], "toObjectId": [item.to.id]}
                message = f"{' and '.join(missing)} not found; nothing was associated"
                errors.append(batch_error(OBJECT_NOT_FOUND, message, context))
            else:
                pairs.append((int(item.from_.id), int(item.to.id)))
        reverse_type_id = DEFAULT_TYPES[(target.object_type, source.object_type)]
        store.associate(source.object_type, target.object_type, pairs, type_id, reverse_type_id)
        results = [
            {
                "from": {"id": str(from_id)},
                "to": {"id": str(to_id)},
                "associationSpec": {"associationCategory": CATEGORY, "associationTypeId": type_id},
            }
            for from_id, to_id in pairs
        ]
        return batch_response(results, errors, started_at)

    @router.post("/associations/{from_object_type}/{to_object_type}/batch/read")
    def read_batch(from_object_type: str, to_object_type: str, body: ReadRequest) -> JSONResponse:
        started_at = now_ms()
        source, target, _ = pair_types(from_object_type, to_object_type)
        _check_size(len(body.inputs), MAX_READ_INPUTS)
        ids = list(dict.fromkeys(int(i.id) for i in body.inputs if i.id.isdigit()))
        known = store.existing_ids(source.object_type, ids)
        found = store.associations(
            source.object_type, [i for i in ids if i in known], target.object_type
        )
        results = [
            {"from": {"id": str(record_id)}, "to": _associated_json(associated)}
            for record_id, associated in found.items()
            if associated
        ]
        missing = [i.id for i in body.inputs if not (i.id.isdigit() and int(i.id) in known)]
        errors = []
        if missing:
            message = f"Could not find some {source.singular.upper()} objects: {missing}"
            errors.append(batch_error(OBJECT_NOT_FOUND, message, {"ids": missing}))
        return batch_response(results, errors, started_at)

    @router.get("/objects/{object_type}/{object_id}/associations/{to_object_type}")
    def list_associations(
        object_type: str,
        object_id: str,
        to_object_type: str,
        limit: int = MAX_PAGE,
        after: str | None = None,
    ) -> JSONResponse:
        source, target, _ = pair_types(object_type, to_object_type)
        if not (object_id.isdigit() and store.existing_ids(source.object_type, [int(object_id)])):
            raise HubSpotError(404, "resource not found", OBJECT_NOT_FOUND)
        associated = store.associations(source.object_type, [int(object_id)], target.object_type)
        everything = associated[int(object_id)]
        offset = int(after) if after and after.isdigit() else 0
        limit = max(1, min(limit, MAX_PAGE))
        body: dict[str, object] = {
            "results": _associated_json(everything[offset : offset + limit]),
        }
        if offset + limit < len(everything):
            body["paging"] = {"next": {"after": str(offset + limit)}}
        return JSONResponse(body)

    return router


def _associated_json(associated: Sequence[tuple[int, int]]) -> list[dict[str, object]]:
    """HubSpot's ``MultiAssociatedObjectWithLabel`` list: one entry per associated record."""
    by_record: dict[int, list[int]] = {}
    for record_id, type_id in associated:
        by_record.setdefault(record_id, []).append(type_id)
    return [
        {
            "toObjectId": record_id,
            "associationTypes": [
                {"category": CATEGORY, "typeId": type_id, "label": None} for type_id in type_ids
            ],
        }
        for record_id, type_ids in by_record.items()
    ]


def _check_size(count: int, limit: int) -> None:
    if count > limit:
        raise HubSpotError(
            400, f"Batch input size {count} exceeds the limit of {limit} inputs", VALIDATION_ERROR
        )
