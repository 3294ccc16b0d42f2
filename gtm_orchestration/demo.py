"""The demo: a sandbox CRM with history, the bundled sample drops, one pass of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from upath import UPath

from gtm_orchestration.lib.storage import write_atomically
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings

SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"

# What the CRM held before the pipeline existed: some of the sample leads are already
# contacts, and reps have edited some of them by hand.
SEED_CONTACTS: list[tuple[dict[str, str], dict[str, str]]] = [
    (
        {
            "email": "m.okafor@initech.com",
            "firstname": "Michael",
            "lastname": "Okafor",
            "jobtitle": "Marketing VP",
            "lifecyclestage": "salesqualifiedlead",
        },
        {"jobtitle": "VP, Global Marketing"},
    ),
    (
        {
            "email": "emma.jones@northwind.co.uk",
            "firstname": "Emma",
            "lastname": "Jones",
            "lifecyclestage": "lead",
        },
        {"phone": "+442079460999"},
    ),
    (
        {
            "email": "olivia.brown@wayne-enterprises.com",
            "firstname": "Olivia",
            "lastname": "Brown",
            "lifecyclestage": "opportunity",
            "hubspot_owner_id": "10003",
        },
        {},
    ),
    (
        {
            "email": "grace.hall@aperture.com",
            "firstname": "Grace",
            "lastname": "Hall",
            "jobtitle": "VP Marketing",
        },
        {},
    ),
]
SEED_COMPANIES = [
    {"domain": "globex.com", "name": "Globex"},
    {"domain": "initech.com", "name": "Initech"},
]


def seed_crm(base_url: str, token: str) -> int:
    """Create the seed records that are missing; returns how many were created."""
    created = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        for object_type, id_property, records in (
            ("companies", "domain", [(c, {}) for c in SEED_COMPANIES]),
            ("contacts", "email", SEED_CONTACTS),
        ):
            for properties, rep_edits in records:
                key = properties[id_property]
                found = http.get(
                    f"/crm/v3/objects/{object_type}/{key}", params={"idProperty": id_property}
                )
                if found.status_code == 200:
                    continue
                http.post(
                    f"/crm/v3/objects/{object_type}", json={"properties": properties}
                ).raise_for_status()
                created += 1
                if rep_edits:
                    http.patch(
                        f"/crm/v3/objects/{object_type}/{key}",
                        params={"idProperty": id_property},
                        json={"properties": rep_edits},
                        headers={"X-Sandbox-Source": "CRM_UI"},
                    ).raise_for_status()
    return created


def drop_sample_files(settings: Settings) -> list[UPath]:
    """Copy the bundled sample files into the landing zone, never over existing ones."""
    dropped = []
    for sample in sorted(SAMPLE_DATA.glob("*/*.csv")):
        target = settings.files_landing_dir / sample.parent.name / sample.name
        if target.exists():
            continue
        # A file appears in the landing zone whole, never half-written.
        write_atomically(target, sample.read_bytes())
        dropped.append(target)
    return dropped


@dataclass(frozen=True)
class DemoSummary:
    files: int
    files_rejected: int
    rows_in: int
    rows_rejected: int
    contacts_created: int
    contacts_updated: int
    companies_created: int
    companies_updated: int

    def lines(self) -> list[str]:
        return [
            f"files ingested      {self.files} ({self.files_rejected} rejected whole)",
            f"rows in             {self.rows_in}",
            f"rows rejected       {self.rows_rejected}",
            f"contacts created    {self.contacts_created}",
            f"contacts updated    {self.contacts_updated}",
            f"companies created   {self.companies_created}",
            f"companies updated   {self.companies_updated}",
        ]


def summarize(settings: Settings, run_ids: list[str]) -> DemoSummary:
    """Counts of what the runs ``run_ids`` did, read back from the warehouse."""
    with Warehouse(settings.warehouse_url).connect() as con:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE these_runs AS SELECT unnest(?) AS run_id", [run_ids]
        )
        files = con.execute(
            "SELECT count(*) FILTER (WHERE status = 'ingested'), "
            "count(*) FILTER (WHERE status = 'rejected'), "
            "coalesce(sum(rows_total), 0), coalesce(sum(rows_rejected), 0) "
            "FROM raw.file_ingestions WHERE run_id IN (SELECT run_id FROM these_runs)"
        ).fetchone()
        syncs = dict(
            con.execute(
                "SELECT object_type || ':' || action, count(*) FROM gtm.crm_sync_log "
                "WHERE run_id IN (SELECT run_id FROM these_runs) GROUP BY ALL"
            ).fetchall()
        )
    return DemoSummary(
        files=files[0],
        files_rejected=files[1],
        rows_in=int(files[2]),
        rows_rejected=int(files[3]),
        contacts_created=syncs.get("contacts:created", 0),
        contacts_updated=syncs.get("contacts:updated", 0),
        companies_created=syncs.get("companies:created", 0),
        companies_updated=syncs.get("companies:updated", 0),
    )
