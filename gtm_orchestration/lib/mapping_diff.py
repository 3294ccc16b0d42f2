"""What a mapping-registry change would do: to the configuration and to the stored records.

``diff_registries`` compares two registry versions field by field. ``diff_landed_records``
re-derives everything in the landing zone (the immutable history every backfill starts
from) under both versions, through the same reading, transform and payload building as the
pipeline, and compares the CRM payloads record by record: which records would change, in
which properties, which would appear or disappear, and which files only one version
accepts. Nothing is written anywhere.
"""

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from gtm_orchestration.lib.batch import scratch_connection
from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.crm_schema import PROVENANCE_PROPERTIES, build_payloads
from gtm_orchestration.lib.landing import LandedItem
from gtm_orchestration.lib.lead_files import (
    FileRejected,
    LandedFile,
    ParsedLeadFile,
    read_landed_leads,
    with_provenance,
)
from gtm_orchestration.lib.mapping import MappingRegistry
from gtm_orchestration.lib.transform import transform_leads

# Examples shown per changed property.
EXAMPLES = 3


def diff_registries(old: MappingRegistry, new: MappingRegistry) -> list[str]:
    """Every configuration difference from ``old`` to ``new``, one line each, by key path."""
    changes: list[str] = []
    for name in sorted(old.sources.keys() | new.sources.keys()):
        where = f"sources.{name}"
        if name not in new.sources:
            changes.append(f"{where}: removed")
            continue
        if name not in old.sources:
            fields = ", ".join(new.sources[name].spec.fields)
            changes.append(f"{where}: added (fields {fields})")
            continue
        before, after = old.sources[name].spec, new.sources[name].spec
        for attribute in ("kinds", "canonical_headers", "ignore"):
            if getattr(before, attribute) != getattr(after, attribute):
                changes.append(
                    f"{where}.{attribute}: {getattr(before, attribute)!r} -> "
                    f"{getattr(after, attribute)!r}"
                )
        for canonical in sorted(before.fields.keys() | after.fields.keys()):
            key = f"{where}.fields.{canonical}"
            if canonical not in after.fields:
                changes.append(f"{key}: removed")
            elif canonical not in before.fields:
                changes.append(f"{key}: added (aliases {list(after.fields[canonical].aliases)})")
            else:
                b, a = before.fields[canonical], after.fields[canonical]
                if b.required != a.required:
                    changes.append(f"{key}.required: {b.required} -> {a.required}")
                for alias in sorted(set(a.aliases) - set(b.aliases)):
                    changes.append(f"{key}.aliases: {alias!r} added")
                for alias in sorted(set(b.aliases) - set(a.aliases)):
                    changes.append(f"{key}.aliases: {alias!r} removed")
    for object_type in sorted(old.crm.keys() | new.crm.keys()):
        before_map, after_map = old.crm.get(object_type, {}), new.crm.get(object_type, {})
        for prop in sorted(before_map.keys() | after_map.keys()):
            key = f"crm.{object_type}.{prop}"
            if prop not in after_map:
                changes.append(f"{key}: no longer written (was {before_map[prop]})")
            elif prop not in before_map:
                changes.append(f"{key}: now written from {after_map[prop]}")
            elif before_map[prop] != after_map[prop]:
                changes.append(f"{key}: {before_map[prop]} -> {after_map[prop]}")
    return changes


@dataclass
class ObjectDiff:
    """How the payloads of one CRM object type differ between two versions."""

    before: int = 0
    after: int = 0
    changed: int = 0
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    by_property: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[str, str | None, str | None]]] = field(default_factory=dict)

    @property
    def unchanged(self) -> int:
        return self.before - self.changed - len(self.removed)


@dataclass
class RecordDiff:
    """The landing zone re-derived under two versions."""

    items: int = 0
    rows: dict[int, int] = field(default_factory=dict)  # version -> rows accepted
    accepted_only_by: dict[int, list[str]] = field(default_factory=dict)  # version -> files
    objects: dict[str, ObjectDiff] = field(default_factory=dict)


def diff_landed_records(
    items: list[LandedItem], old: MappingRegistry, new: MappingRegistry
) -> RecordDiff:
    """Re-derive ``items`` (engagement batches are skipped: no mapping applies to them)
    under ``old`` and ``new`` and compare the CRM payloads they give."""
    result = RecordDiff()
    seen: set[str] = set()
    tables: dict[int, list[pa.Table]] = {old.version: [], new.version: []}
    accepted: dict[int, set[str]] = {old.version: set(), new.version: set()}
    for item in items:
        if item.source.startswith("engagement/"):
            continue
        landed = LandedFile.inspect(item.path, item.source)
        if landed.sha256 in seen:  # a byte-identical copy is ingested once
            continue
        seen.add(landed.sha256)
        result.items += 1
        for registry in (old, new):
            parsed = _read(item, registry)
            if parsed is not None:
                accepted[registry.version].add(str(item.path))
                tables[registry.version].append(
                    with_provenance(
                        parsed, item.source_name, item.path, landed.modified_at, registry.version
                    )
                )
    for version, only_here in (
        (old.version, accepted[old.version] - accepted[new.version]),
        (new.version, accepted[new.version] - accepted[old.version]),
    ):
        result.accepted_only_by[version] = sorted(only_here)
    derived = {
        registry.version: _derive(tables[registry.version], registry) for registry in (old, new)
    }
    result.rows = {version: d.rows for version, d in derived.items()}
    for object_type in ("contacts", "companies"):
        result.objects[object_type] = _compare(
            derived[old.version].payloads[object_type], derived[new.version].payloads[object_type]
        )
    return result


def _read(item: LandedItem, registry: MappingRegistry) -> ParsedLeadFile | None:
    """The item read as ``registry`` reads it; None if that version rejects it whole."""
    try:
        return read_landed_leads(item, registry)
    except (FileRejected, ConfigError):  # a rejection is a result here
        return None


@dataclass
class _Derived:
    rows: int
    payloads: dict[str, dict[str, dict[str, str]]]  # object type -> key -> properties


def _derive(tables: list[pa.Table], registry: MappingRegistry) -> _Derived:
    """Transform the rows read under ``registry`` and build its CRM payloads."""
    if not tables:
        return _Derived(0, {"contacts": {}, "companies": {}})
    rows = pa.concat_tables(tables, promote_options="default")
    con = scratch_connection()
    try:
        leads, companies = transform_leads(con, rows)
    finally:
        con.close()
    payloads = {
        object_type: {
            p.key: p.properties
            for p in build_payloads(table, registry.crm[object_type], object_type)
        }
        for object_type, table in (("contacts", leads), ("companies", companies))
    }
    return _Derived(rows.num_rows, payloads)


def _compare(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> ObjectDiff:
    diff = ObjectDiff(before=len(before), after=len(after))
    diff.added = sorted(after.keys() - before.keys())
    diff.removed = sorted(before.keys() - after.keys())
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key], after[key]
        props = sorted(
            p
            for p in old.keys() | new.keys()
            if p not in PROVENANCE_PROPERTIES and old.get(p) != new.get(p)
        )
        if not props:
            continue
        diff.changed += 1
        for prop in props:
            diff.by_property[prop] += 1
            examples = diff.examples.setdefault(prop, [])
            if len(examples) < EXAMPLES:
                examples.append((key, old.get(prop), new.get(prop)))
    return diff


def describe(
    old: MappingRegistry, new: MappingRegistry, config: list[str], records: RecordDiff
) -> str:
    """The diff as the CLI prints it."""
    out = [f"mapping registry v{old.version} -> v{new.version}", "", "configuration:"]
    out += [f"  {line}" for line in config] or ["  no difference"]
    out += [
        "",
        f"landed data re-derived: {records.items} files and form batches; rows accepted: "
        + ", ".join(f"v{v} {n}" for v, n in records.rows.items()),
    ]
    for version, paths in records.accepted_only_by.items():
        for path in paths:
            out.append(f"  accepted by v{version} only: {path}")
    for object_type, diff in records.objects.items():
        out.append(
            f"{object_type}: {diff.changed} would change, {len(diff.added)} new, "
            f"{len(diff.removed)} gone, {diff.unchanged} unchanged "
            f"(v{old.version} {diff.before}, v{new.version} {diff.after})"
        )
        for prop, count in diff.by_property.most_common():
            out.append(f"  {prop}: {count} record(s)")
            for key, before, after in diff.examples[prop]:
                out.append(f"    {key}: {before!r} -> {after!r}")
        for label, keys in (("new", diff.added), ("gone", diff.removed)):
            if keys:
                shown = ", ".join(keys[:EXAMPLES]) + (", ..." if len(keys) > EXAMPLES else "")
                out.append(f"  {label}: {shown}")
    return "\n".join(out)
