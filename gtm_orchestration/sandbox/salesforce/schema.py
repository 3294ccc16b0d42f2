"""The emulated org's object schema: Contact and Account, standard fields plus custom ``GTM_*``.

Field names are matched case-insensitively, as Salesforce matches API names. Each object has
a custom external-id field (``GTM_Email__c`` on Contact, ``GTM_Domain__c`` on Account) that
upserts match on, also case-insensitively. Values are checked the way Salesforce checks
them on a write; a problem is a ``FieldProblem`` whose ``error`` is the text Salesforce puts
in a failed record's ``sf__Error`` column (``CODE:message:Field --``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal[
    "id",
    "string",
    "textarea",
    "email",
    "phone",
    "url",
    "picklist",
    "double",
    "int",
    "currency",
    "reference",
    "datetime",
]

# Written as the value of a cell, clears the field; an empty cell leaves it as it is.
CLEAR_VALUE = "#N/A"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class FieldProblem:
    """Why one value was refused: Salesforce's status code, message and field."""

    code: str
    message: str
    field: str | None = None

    @property
    def error(self) -> str:
        """The ``sf__Error`` text, e.g. ``REQUIRED_FIELD_MISSING:Required fields are
        missing: [LastName]:LastName --``."""
        return f"{self.code}:{self.message}:{self.field + ' ' if self.field else ''}--"


@dataclass(frozen=True)
class FieldSpec:
    """One field as ``describe`` would show it."""

    name: str
    label: str
    type: FieldType
    length: int | None = None  # text: characters; numbers: digits left of the point
    required: bool = False  # not nillable and no default: a create must set it
    external_id: bool = False  # also unique, case-insensitive
    picklist: tuple[str, ...] = ()
    restricted: bool = False  # a restricted picklist refuses values it does not list
    writable: bool = True
    reference_to: str | None = None
    relationship_name: str | None = None

    def parse(self, text: str) -> str | int | float | FieldProblem:
        """``text`` (one CSV cell, not empty) as the value stored, or the problem with it."""
        value: str | int | float = text
        if self.type in ("double", "currency", "int"):
            try:
                number = float(text)
            except ValueError:
                return self._problem(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD", f"value not of required type: {text}"
                )
            if self.type == "int" and not number.is_integer():
                return self._problem(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD", f"value not of required type: {text}"
                )
            if self.length is not None and abs(number) >= 10**self.length:
                return self._problem(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"value outside of valid range on numeric field: {text}",
                )
            value = int(number) if self.type == "int" or number.is_integer() else number
        elif self.length is not None and len(text) > self.length:
            return self._problem(
                "STRING_TOO_LONG", f"data value too large: {text} (max length={self.length})"
            )
        if self.type == "email" and not _EMAIL.match(text):
            return self._problem("INVALID_EMAIL_ADDRESS", f"invalid email address: {text}")
        if self.type == "picklist" and self.restricted and text not in self.picklist:
            return self._problem(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"bad value for restricted picklist field: {text}",
            )
        return value

    def _problem(self, code: str, detail: str) -> FieldProblem:
        return FieldProblem(code, f"{self.label}: {detail}", self.name)


@dataclass(frozen=True)
class SObjectSpec:
    """One object: its API name, the 3-character prefix of its record ids and its fields."""

    name: str
    key_prefix: str
    fields: tuple[FieldSpec, ...]
    _by_name: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> FieldSpec | None:
        """The field called ``name`` in any letter case, None if the object has none."""
        return self._by_name.get(name.lower())

    def relationship(self, name: str) -> FieldSpec | None:
        """The lookup field whose relationship is called ``name`` (``Account`` for
        ``AccountId``), None if there is none."""
        lowered = name.lower()
        for spec in self.fields:
            if spec.relationship_name and spec.relationship_name.lower() == lowered:
                return spec
        return None

    @property
    def required(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.required)


_SYSTEM_FIELDS = (
    FieldSpec("CreatedDate", "Created Date", "datetime", writable=False),
    FieldSpec("LastModifiedDate", "Last Modified Date", "datetime", writable=False),
    FieldSpec("SystemModstamp", "System Modstamp", "datetime", writable=False),
)

FUNCTIONS = (
    "marketing",
    "sales",
    "customer_success",
    "engineering",
    "information_technology",
    "product",
    "finance",
    "human_resources",
    "operations",
    "legal",
    "general_management",
    "other",
)
SENIORITIES = ("c_level", "vp", "director", "manager", "individual_contributor", "unknown")

CONTACT = SObjectSpec(
    "Contact",
    "003",
    (
        FieldSpec("Id", "Contact ID", "id", writable=False),
        FieldSpec("FirstName", "First Name", "string", 40),
        FieldSpec("LastName", "Last Name", "string", 80, required=True),
        FieldSpec("Email", "Email", "email", 80),
        FieldSpec("Title", "Title", "string", 128),
        FieldSpec("Phone", "Business Phone", "phone", 40),
        FieldSpec("MailingCity", "Mailing City", "string", 40),
        FieldSpec("MailingState", "Mailing State/Province", "string", 80),
        FieldSpec("MailingCountry", "Mailing Country", "string", 80),
        FieldSpec(
            "AccountId",
            "Account ID",
            "reference",
            reference_to="Account",
            relationship_name="Account",
        ),
        FieldSpec("GTM_Email__c", "GTM Email", "string", 255, external_id=True),
        FieldSpec(
            "GTM_Function__c", "GTM Function", "picklist", picklist=FUNCTIONS, restricted=True
        ),
        FieldSpec(
            "GTM_Seniority__c",
            "GTM Seniority",
            "picklist",
            picklist=SENIORITIES,
            restricted=True,
        ),
        FieldSpec("GTM_Persona__c", "GTM Persona", "string", 255),
        FieldSpec("GTM_Country_Code__c", "GTM Country Code", "string", 2),
        FieldSpec("GTM_Fit_Score__c", "GTM Fit Score", "double", 3),
        FieldSpec("GTM_Fit_Reasons__c", "GTM Fit Reasons", "textarea", 32768),
        FieldSpec("GTM_Engagement_Score__c", "GTM Engagement Score", "double", 3),
        FieldSpec("GTM_Territory__c", "GTM Territory", "string", 80),
        FieldSpec("GTM_Source__c", "GTM Source", "string", 80),
        FieldSpec("GTM_Mapping_Version__c", "GTM Mapping Version", "double", 4),
        *_SYSTEM_FIELDS,
    ),
)

ACCOUNT = SObjectSpec(
    "Account",
    "001",
    (
        FieldSpec("Id", "Account ID", "id", writable=False),
        FieldSpec("Name", "Account Name", "string", 255, required=True),
        FieldSpec("Website", "Website", "url", 255),
        # The standard Industry picklist is not restricted: other values are kept as sent.
        FieldSpec(
            "Industry",
            "Industry",
            "picklist",
            picklist=("Banking", "Consulting", "Education", "Finance", "Technology", "Other"),
        ),
        FieldSpec("BillingState", "Billing State/Province", "string", 80),
        FieldSpec("BillingCountry", "Billing Country", "string", 80),
        FieldSpec("NumberOfEmployees", "Employees", "int", 8),
        FieldSpec("AnnualRevenue", "Annual Revenue", "currency", 18),
        FieldSpec("GTM_Domain__c", "GTM Domain", "string", 255, external_id=True),
        FieldSpec("GTM_Country_Code__c", "GTM Country Code", "string", 2),
        FieldSpec("GTM_Fit_Score__c", "GTM Fit Score", "double", 3),
        FieldSpec("GTM_Fit_Reasons__c", "GTM Fit Reasons", "textarea", 32768),
        FieldSpec("GTM_Territory__c", "GTM Territory", "string", 80),
        *_SYSTEM_FIELDS,
    ),
)

SOBJECTS: dict[str, SObjectSpec] = {spec.name.lower(): spec for spec in (CONTACT, ACCOUNT)}


def sobject(name: str) -> SObjectSpec | None:
    """The object called ``name`` in any letter case, None if the org has none."""
    return SOBJECTS.get(name.lower())
