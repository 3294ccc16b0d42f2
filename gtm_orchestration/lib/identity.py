"""Identity resolution rules: which source's value of a field wins when several records
are the same person (``config/identity.yaml``); the transform's merge applies them."""

from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from gtm_orchestration.lib.config import config_path, load_model
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS

# Source names as the registry spells them (they are written into SQL).
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class IdentityRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    default: tuple[SourceName, ...] = ()
    fields: dict[str, tuple[SourceName, ...]] = {}

    @field_validator("fields")
    @classmethod
    def _canonical(cls, fields: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        unknown = sorted(set(fields) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown field(s) {unknown}; expected some of {list(CANONICAL_FIELDS)}"
            )
        return fields

    def precedence(self, field: str) -> tuple[str, ...]:
        """Sources in the order their values of ``field`` win."""
        return self.fields.get(field, self.default)

    def rank_sql(self, field: str, source_column: str = "source") -> str:
        """A SQL expression ranking a row's source for ``field``: higher wins. Every source
        listed outranks every source not listed; unlisted sources rank 0."""
        order = self.precedence(field)
        if not order:
            return "0"
        cases = " ".join(f"WHEN '{source}' THEN {len(order) - i}" for i, source in enumerate(order))
        return f"CASE {source_column} {cases} ELSE 0 END"


@cache
def identity_rules(path: Path | None = None) -> IdentityRules:
    """The rules in ``config/identity.yaml`` (or ``path``)."""
    return load_model(path or config_path("identity.yaml"), IdentityRules)
