"""The portal's property schema: what the sandbox accepts, as configured for the pipeline.

The schema is not invented here: it is ``config/crm/hubspot_properties.yaml``, the same file
the loaders check their outgoing values against, plus HubSpot's read-only system properties.
Values are validated and normalised the way HubSpot does, with HubSpot's error codes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from gtm_orchestration.lib.config import config_path, load_model
from gtm_orchestration.lib.hubspot_time import iso_from_ms, ms_from_text
from gtm_orchestration.sandbox.hubspot.owners import OWNER_IDS

PROPERTIES_FILE = config_path("crm", "hubspot_properties.yaml")

# HubSpot refuses an email without a local part, an @ and a dotted domain.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

PropertyType = Literal["string", "number", "enumeration", "datetime"]

# HubSpot maintains these itself: clients may read and filter on them but never write them.
# Both objects get both last-modified spellings so either kind of client finds its own.
SYSTEM_PROPERTIES: dict[str, PropertyType] = {
    "hs_object_id": "number",
    "createdate": "datetime",
    "lastmodifieddate": "datetime",
    "hs_lastmodifieddate": "datetime",
}

# HubSpot returns these on every object whatever properties were asked for.
_ALWAYS_RETURNED: dict[str, tuple[str, ...]] = {
    "contacts": ("createdate", "hs_object_id", "lastmodifieddate"),
    "companies": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
}
# ...and these when a request names no properties at all.
_DEFAULT_RETURNED: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "firstname", "lastname"),
    "companies": ("name", "domain"),
}
# Labels HubSpot uses in messages: "Contact already exists", "Could not get some CONTACT ...".
_SINGULAR: dict[str, str] = {"contacts": "Contact", "companies": "Company"}
# Other names HubSpot's API accepts for the same object types in a URL.
_TYPE_ALIASES: dict[str, str] = {
    "contact": "contacts",
    "0-1": "contacts",
    "company": "companies",
    "0-2": "companies",
}
# Properties matched by a search request's free-text ``query``.
_QUERY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "firstname", "lastname", "phone", "company"),
    "companies": ("name", "domain", "website", "phone"),
}


class PropertyConfig(BaseModel):
    """One property as declared in the YAML file."""

    model_config = ConfigDict(extra="forbid")

    type: PropertyType
    options: list[str] | None = None
    options_from: Literal["owners"] | None = None

    @model_validator(mode="after")
    def _options_match_type(self) -> PropertyConfig:
        if self.type == "enumeration" and (self.options is None) == (self.options_from is None):
            raise ValueError("an enumeration needs exactly one of options or options_from")
        if self.type != "enumeration" and (self.options or self.options_from):
            raise ValueError("only an enumeration takes options or options_from")
        return self


class ObjectConfig(BaseModel):
    """One CRM object type as declared in the YAML file."""

    model_config = ConfigDict(extra="forbid")

    unique_property: str
    properties: dict[str, PropertyConfig]

    @model_validator(mode="after")
    def _unique_property_is_declared(self) -> ObjectConfig:
        if self.unique_property not in self.properties:
            raise ValueError(f"unique_property {self.unique_property!r} is not among properties")
        if self.properties[self.unique_property].type != "string":
            raise ValueError(f"unique_property {self.unique_property!r} must be a string")
        clash = sorted(set(self.properties) & set(SYSTEM_PROPERTIES))
        if clash:
            raise ValueError(f"{clash} are HubSpot system properties and cannot be declared")
        return self


class PortalConfig(BaseModel):
    """The whole ``hubspot_properties.yaml`` file."""

    model_config = ConfigDict(extra="forbid")

    version: int
    objects: dict[str, ObjectConfig]


@dataclass(frozen=True)
class PropertyDefinition:
    """A property as the portal serves it: type, allowed options, whether clients may write it."""

    name: str
    type: PropertyType
    options: tuple[str, ...] | None = None
    options_from_owners: bool = False
    read_only: bool = False
    unique: bool = False


@dataclass(frozen=True)
class PropertyProblem:
    """Why one property value was refused, with HubSpot's error code and message."""

    name: str
    code: str
    message: str

    def as_validation_result(self) -> dict[str, object]:
        """HubSpot's ``propertyValidationResult`` shape, quoted inside its error messages."""
        return {
            "isValid": False,
            "message": self.message,
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": self.message,
        }

    def as_error_detail(self) -> dict[str, object]:
        """HubSpot's ``ErrorDetail`` shape for the ``errors`` list of an error body."""
        return {
            "message": self.message,
            "code": self.code,
            "in": self.name,
            "context": {"propertyName": [self.name]},
        }


@dataclass(frozen=True)
class ObjectSchema:
    """The properties of one object type and the HubSpot conventions around them."""

    object_type: str
    unique_property: str
    properties: Mapping[str, PropertyDefinition]

    @property
    def singular(self) -> str:
        return _SINGULAR.get(self.object_type, self.object_type.rstrip("s").capitalize())

    @property
    def always_returned(self) -> tuple[str, ...]:
        return _ALWAYS_RETURNED.get(self.object_type, ("createdate", "hs_object_id"))

    @property
    def default_returned(self) -> tuple[str, ...]:
        return _DEFAULT_RETURNED.get(self.object_type, ()) + self.always_returned

    @property
    def query_properties(self) -> tuple[str, ...]:
        return _QUERY_PROPERTIES.get(self.object_type, (self.unique_property,))

    def normalize_unique_value(self, value: str) -> str:
        """Emails and domains are matched case-insensitively, so they are stored lower-cased."""
        return value.strip().lower()

    def normalize_values(
        self, raw: Mapping[str, object]
    ) -> tuple[dict[str, str], list[PropertyProblem]]:
        """Validate client-sent property values and bring them to their stored form.

        Returns the values as HubSpot stores them (all strings; ``""`` clears a value) and
        the problems found, one per refused property. Callers apply nothing when any problem
        is returned.
        """
        values: dict[str, str] = {}
        problems: list[PropertyProblem] = []
        for name, raw_value in raw.items():
            definition = self.properties.get(name)
            if definition is None:
                message = f'Property "{name}" does not exist'
                problems.append(PropertyProblem(name, "PROPERTY_DOESNT_EXIST", message))
                continue
            if definition.read_only:
                problems.append(
                    PropertyProblem(
                        name,
                        "READ_ONLY_VALUE",
                        f'"{name}" is a read only property; its value cannot be set.',
                    )
                )
                continue
            value, problem = _normalize_value(definition, _as_text(raw_value))
            if problem is not None:
                problems.append(problem)
            else:
                values[name] = value
        return values, problems


def _as_text(raw_value: object) -> str:
    """HubSpot takes JSON numbers and booleans for properties and stores them as text."""
    if raw_value is None:
        return ""
    if isinstance(raw_value, bool):
        return "true" if raw_value else "false"
    return str(raw_value)


def _normalize_value(
    definition: PropertyDefinition, value: str
) -> tuple[str, PropertyProblem | None]:
    if value == "":
        return "", None
    if definition.name == "email" and not _EMAIL.match(value.strip()):
        return "", PropertyProblem(
            definition.name, "INVALID_EMAIL", f"Email address {value} is invalid"
        )
    if definition.unique:
        return value.strip().lower(), None
    if definition.type == "number":
        number = _canonical_number(value)
        if number is None:
            return "", PropertyProblem(
                definition.name, "INVALID_FLOAT", f"{value} was not a valid number."
            )
        return number, None
    if definition.type == "datetime":
        ms = ms_from_text(value)
        if ms is None:
            return "", PropertyProblem(
                definition.name,
                "INVALID_DATE",
                f"{value} was not a valid date; expected epoch milliseconds or ISO 8601.",
            )
        return iso_from_ms(ms), None
    if definition.type == "enumeration":
        allowed = OWNER_IDS if definition.options_from_owners else definition.options or ()
        if value not in allowed:
            return "", PropertyProblem(
                definition.name,
                "INVALID_OPTION",
                f"{value} was not one of the allowed options: [{', '.join(allowed)}]",
            )
    return value, None


def _canonical_number(value: str) -> str | None:
    """``"1000000.0"``, ``"1e6"`` and ``"1000000"`` are one number, stored as ``"1000000"``.

    One spelling per number lets a re-sent value be recognised as unchanged.
    """
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


@dataclass(frozen=True)
class PortalSchema:
    """Every object type the sandbox portal serves."""

    objects: Mapping[str, ObjectSchema]

    def resolve_object_type(self, name: str) -> ObjectSchema | None:
        """The schema for a URL's object type (``contacts``, ``contact``, ``0-1``), or None."""
        return self.objects.get(_TYPE_ALIASES.get(name.lower(), name.lower()))

    def canonical_object_type(self, name: str) -> str:
        """The plural object type a URL segment stands for, or the segment itself."""
        schema = self.resolve_object_type(name)
        return schema.object_type if schema is not None else name


def load_portal_schema(path: Path = PROPERTIES_FILE) -> PortalSchema:
    """Load the portal's schema from ``path``; raises ConfigError naming the file and key."""
    config = load_model(path, PortalConfig)
    objects: dict[str, ObjectSchema] = {}
    for object_type, object_config in config.objects.items():
        definitions = {
            name: PropertyDefinition(
                name=name,
                type=prop.type,
                options=tuple(prop.options) if prop.options is not None else None,
                options_from_owners=prop.options_from == "owners",
                unique=name == object_config.unique_property,
            )
            for name, prop in object_config.properties.items()
        }
        for name, prop_type in SYSTEM_PROPERTIES.items():
            definitions[name] = PropertyDefinition(name=name, type=prop_type, read_only=True)
        objects[object_type] = ObjectSchema(
            object_type=object_type,
            unique_property=object_config.unique_property,
            properties=definitions,
        )
    return PortalSchema(objects=objects)
