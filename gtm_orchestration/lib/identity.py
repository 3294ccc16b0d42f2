"""Identity resolution: which records are one person, and which source's value of a field
wins when they are (``config/identity.yaml``); the transform's merge applies them.

Records are one person when their addresses have the same ``identity_email`` (case and
spaces everywhere; Gmail's dots and ``+tags`` where the provider ignores them). The person's
CRM contact is keyed by the first address the pipeline saw them with: within a batch the
earliest landed record's, across runs the one ``gtm.identities`` remembers.
"""

from functools import cache
from pathlib import Path
from typing import Annotated

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from gtm_orchestration.lib.batch import distinct_lookup, join_on
from gtm_orchestration.lib.config import config_path, load_model
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS
from gtm_orchestration.lib.normalize import default_email_providers, identity_email
from gtm_orchestration.lib.validation import plain_email_sql

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


def as_is_email_sql(column: str) -> str:
    """SQL: whether the address in ``column`` is, in lower case, both its normalized form
    and its identity (``identity_email``): a plain address at a domain without mailbox
    rules. Other addresses need the Python rules."""
    domain = f"lower(split_part({column}, '@', 2))"
    may_apply = default_email_providers().rule_may_apply_sql(domain)
    return f"({plain_email_sql(column)} AND NOT {may_apply})"


def remember_identities(con: duckdb.DuckDBPyConnection, leads: pa.Table) -> pa.Table:
    """Key each of ``leads`` (one per person, ``email`` normalized) by the address its
    person was first seen with, on this run or an earlier one.

    People not seen before are recorded in ``gtm.identities`` with their lead's address.
    Returns ``leads`` with ``email`` replaced where an earlier run saw the person under
    another spelling of the same mailbox (``jo.park@gmail.com`` then ``jopark@gmail.com``),
    so that both stay one CRM contact; the same leads again change nothing.
    """
    con.register("identity_leads", leads)
    as_is = as_is_email_sql("r.email")
    lookup = distinct_lookup(
        con,
        f"(SELECT email FROM identity_leads AS r WHERE NOT {as_is})",
        ["email"],
        lambda email: (identity_email(email),),
        pa.schema([("identity", pa.string())]),
    )
    keyed = (
        f"SELECT CASE WHEN {as_is} THEN r.email ELSE coalesce(i.identity, r.email) END "
        f"AS identity_key, r.email FROM identity_leads AS r "
        f"LEFT JOIN {lookup} AS i ON {join_on('i', ['r.email'])} "
        "WHERE r.email IS NOT NULL"
    )
    con.execute(
        "INSERT INTO gtm.identities SELECT identity_key, email, now() "
        f"FROM ({keyed}) ON CONFLICT DO NOTHING"
    )
    renamed = dict(
        con.execute(
            f"SELECT k.email, m.email FROM ({keyed}) AS k "
            "JOIN gtm.identities AS m USING (identity_key) WHERE m.email <> k.email"
        ).fetchall()
    )
    con.unregister("identity_leads")
    con.unregister(lookup)
    if not renamed:
        return leads
    emails = leads.column("email")
    earlier = pa.array(list(renamed), pa.string())
    first_seen = pc.take(
        pa.array(list(renamed.values()), pa.string()), pc.index_in(emails, earlier)
    )
    position = leads.schema.get_field_index("email")
    return leads.set_column(position, "email", pc.coalesce(first_seen, emails))
