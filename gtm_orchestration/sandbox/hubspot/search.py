"""HubSpot's CRM search semantics over the sandbox's records.

``filterGroups`` are ORed, the filters inside a group ANDed. Number and datetime properties
compare numerically (datetime filter values may be epoch millis or ISO 8601, as HubSpot
accepts); other properties compare as case-insensitive text, as HubSpot's search does.
Negative operators (NEQ, NOT_IN, NOT_CONTAINS_TOKEN) match records without a value.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

from gtm_orchestration.lib.hubspot_time import ms_from_text
from gtm_orchestration.sandbox.hubspot.schema import ObjectSchema, PropertyDefinition
from gtm_orchestration.sandbox.hubspot.store import CrmRecord

MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18

ScalarValue = str | int | float | bool
Comparable = Decimal | str
RecordPredicate = Callable[[CrmRecord], bool]

_TOKEN_SPLIT = re.compile(r"[^\w*]+")


class SearchRequestError(ValueError):
    """The search request cannot be run as given; the message says why."""


class SearchFilter(BaseModel):
    """One filter of a filter group."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    property_name: str = Field(alias="propertyName")
    operator: str = "EQ"
    value: ScalarValue | None = None
    high_value: ScalarValue | None = Field(default=None, alias="highValue")
    values: list[ScalarValue] | None = None


class FilterGroup(BaseModel):
    """Filters that must all hold."""

    model_config = ConfigDict(extra="ignore")

    filters: list[SearchFilter] = []


class SortSpec(BaseModel):
    """One sort key; HubSpot also accepts a bare property name, ``-name`` for descending."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    property_name: str = Field(alias="propertyName")
    direction: str = "ASCENDING"


def build_predicate(groups: Sequence[FilterGroup], schema: ObjectSchema) -> RecordPredicate:
    """A predicate that holds for records matching any of ``groups`` (all records if none).

    Raises SearchRequestError for too many filters, an unknown property or operator, or a
    value that does not fit the property's type.
    """
    if len(groups) > MAX_FILTER_GROUPS:
        raise SearchRequestError(f"at most {MAX_FILTER_GROUPS} filterGroups are allowed")
    if sum(len(group.filters) for group in groups) > MAX_FILTERS:
        raise SearchRequestError(f"at most {MAX_FILTERS} filters are allowed in all")
    compiled: list[list[RecordPredicate]] = []
    for group in groups:
        if len(group.filters) > MAX_FILTERS_PER_GROUP:
            raise SearchRequestError(f"at most {MAX_FILTERS_PER_GROUP} filters per filterGroup")
        compiled.append([_compile_filter(search_filter, schema) for search_filter in group.filters])
    if not compiled:
        return lambda record: True
    return lambda record: any(all(test(record) for test in group) for group in compiled)


def sort_records(
    records: list[CrmRecord], sorts: Sequence[SortSpec | str], schema: ObjectSchema
) -> list[CrmRecord]:
    """``records`` ordered by ``sorts``, then by id; records without the value go last."""
    ordered = sorted(records, key=lambda record: record.id)
    for sort in reversed([_as_sort_spec(sort) for sort in sorts]):
        definition = _definition(schema, sort.property_name)
        direction = sort.direction.upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise SearchRequestError(f"sort direction must be ASCENDING or DESCENDING: {direction}")
        present = [r for r in ordered if _comparable_of(r, definition) is not None]
        absent = [r for r in ordered if _comparable_of(r, definition) is None]
        present.sort(
            key=lambda record: _comparable_of(record, definition),
            reverse=direction == "DESCENDING",
        )
        ordered = present + absent
    return ordered


def build_query_predicate(query: str, schema: ObjectSchema) -> RecordPredicate:
    """A predicate for a free-text ``query``: every word appears in a searchable property."""
    words = [word for word in query.casefold().split() if word]

    def matches(record: CrmRecord) -> bool:
        haystack = " ".join(
            record.properties.get(name, "") for name in schema.query_properties
        ).casefold()
        return all(word in haystack for word in words)

    return matches


def _as_sort_spec(sort: SortSpec | str) -> SortSpec:
    if isinstance(sort, SortSpec):
        return sort
    if sort.startswith("-"):
        return SortSpec(property_name=sort[1:], direction="DESCENDING")
    return SortSpec(property_name=sort)


def _definition(schema: ObjectSchema, name: str) -> PropertyDefinition:
    definition = schema.properties.get(name)
    if definition is None:
        raise SearchRequestError(f'Property "{name}" does not exist')
    return definition


def _comparable(definition: PropertyDefinition, text: str) -> Comparable | None:
    """The value as search compares it: a number for numbers and datetimes, else folded text."""
    if definition.type == "number":
        try:
            return Decimal(text.strip())
        except InvalidOperation:
            return None
    if definition.type == "datetime":
        ms = ms_from_text(text)
        return Decimal(ms) if ms is not None else None
    return text.casefold()


def _comparable_of(record: CrmRecord, definition: PropertyDefinition) -> Comparable | None:
    text = record.properties.get(definition.name)
    return _comparable(definition, text) if text else None


def _filter_operand(definition: PropertyDefinition, value: ScalarValue | None) -> Comparable:
    if value is None:
        raise SearchRequestError(f"a value is required to filter on {definition.name}")
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    operand = _comparable(definition, text)
    if operand is None:
        raise SearchRequestError(
            f"{text!r} is not a valid {definition.type} value to filter {definition.name} on"
        )
    return operand


def _compile_filter(search_filter: SearchFilter, schema: ObjectSchema) -> RecordPredicate:
    definition = _definition(schema, search_filter.property_name)
    operator = search_filter.operator.upper()

    def value_of(record: CrmRecord) -> Comparable | None:
        return _comparable_of(record, definition)

    if operator == "HAS_PROPERTY":
        return lambda record: value_of(record) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda record: value_of(record) is None
    if operator in ("IN", "NOT_IN"):
        if not search_filter.values:
            raise SearchRequestError(f"{operator} needs a non-empty values list")
        members = {_filter_operand(definition, value) for value in search_filter.values}
        if operator == "IN":
            return lambda record: value_of(record) in members
        return lambda record: value_of(record) not in members
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(search_filter.value or "").casefold()
        if not token:
            raise SearchRequestError(f"{operator} needs a value")

        def contains(record: CrmRecord) -> bool:
            text = record.properties.get(definition.name, "").casefold()
            if "*" in token:
                return fnmatch.fnmatchcase(text, token) or any(
                    fnmatch.fnmatchcase(part, token) for part in _TOKEN_SPLIT.split(text)
                )
            return token in _TOKEN_SPLIT.split(text)

        if operator == "CONTAINS_TOKEN":
            return contains
        return lambda record: not contains(record)

    operand = _filter_operand(definition, search_filter.value)
    if operator == "BETWEEN":
        high = _filter_operand(definition, search_filter.high_value)
        return lambda record: _holds(value_of(record), lambda v: operand <= v <= high)
    comparisons: dict[str, Callable[[Comparable], bool]] = {
        "EQ": lambda v: v == operand,
        "GT": lambda v: v > operand,
        "GTE": lambda v: v >= operand,
        "LT": lambda v: v < operand,
        "LTE": lambda v: v <= operand,
    }
    if operator == "NEQ":
        return lambda record: value_of(record) != operand
    if operator not in comparisons:
        raise SearchRequestError(f"unknown filter operator {search_filter.operator!r}")
    compare = comparisons[operator]
    return lambda record: _holds(value_of(record), compare)


def _holds(value: Comparable | None, test: Callable[[Comparable], bool]) -> bool:
    return value is not None and test(value)
