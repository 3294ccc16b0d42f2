"""The warehouse: DuckDB by default or PostgreSQL, one schema of pipeline tables.

``GTM_WAREHOUSE_URL`` says where the tables live: ``duckdb:///<path>`` (a DuckDB file) or
``postgresql://user[:password]@host[:port]/database[?sslmode=...]``. DuckDB is the query
engine either way: on PostgreSQL a connection is an in-memory DuckDB with the database
attached through DuckDB's ``postgres_scanner`` extension and made its default catalog, so
every statement of the pipeline reads and writes PostgreSQL's tables unchanged.

Tables written by the pipeline (all append-only except the current-state ones, marked):

- ``raw.file_ingestions``   the ingestion log: one row per file seen, with its sha256.
- ``raw.lead_rows``         every accepted row as landed, mapped to canonical fields, under
  every mapping version a backfill re-derived it with; ``raw.current_lead_rows`` (a view)
  keeps each file's rows of its newest version.
- ``raw.rejected_rows``     every row rejected at extraction, with line, field and reason.
- ``raw.engagement_events``  every engagement event landed by webhook, once per event id.
- ``gtm.leads``             (current state per partition) transformed, deduplicated leads.
- ``gtm.companies``         (current state per partition) companies derived from leads.
- ``gtm.sync_ledger``       (current state) what was last confirmed per CRM record.
- ``gtm.crm_sync_log``      every record sent to a CRM, with the outcome.
- ``raw.crm_contact_changes`` every change of a HubSpot contact seen by webhook or poll, once
  per event id / (object id, lastmodifieddate, property); echoes of the pipeline's own
  writes are kept and flagged ``is_echo``.
- ``gtm.crm_contacts``      (current state) each HubSpot contact as the change feeds last saw it.
- ``gtm.cdc_cursors``       (current state) the high-water mark of each change-capture stream.
- ``gtm.identities``        (append-only) each person's identity (``identity_email``) and the
  address the pipeline first saw them with: the key of their CRM contact.
- ``gtm.enrichment_cache``  (current state) the enrichment API's last answer per company
  domain, with when it was fetched: found (firmographics as JSON) or unknown; ``error`` holds
  the last failed lookup's reason until an answer replaces it.
- ``gtm.sequence_enrollments`` (current state) one row per sequence enrollment key
  (``<sequence key>:<email>``): held, sending, enrolled, cancelled or failed, with the reason.
- ``gtm.sequence_enrollment_log`` every step of every enrollment: held, cancelled, claimed,
  enrolled, retried, failed.
- ``gtm.stage_metrics``     (append-only) the numbers of every run, stage and asset: records
  in and out, rejected, failed, latency, completeness (``lib/metrics.py``).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import duckdb
import duckdb_extension_postgres_scanner

from gtm_orchestration.lib.mapping import CANONICAL_FIELDS

_CANONICAL_COLUMNS = ",\n    ".join(f"{field} VARCHAR" for field in CANONICAL_FIELDS)

# A view is stored as written, in the database that holds it: SQL both DuckDB and PostgreSQL
# accept.
_CURRENT_LEAD_ROWS_VIEW = """CREATE OR REPLACE VIEW raw.current_lead_rows AS
SELECT landed.* FROM raw.lead_rows AS landed
JOIN (
    SELECT partition_date, source_file, max(mapping_version) AS mapping_version
    FROM raw.lead_rows GROUP BY partition_date, source_file
) AS newest
ON landed.partition_date = newest.partition_date AND landed.source_file = newest.source_file
AND landed.mapping_version = newest.mapping_version"""
# DuckDB cannot create a sequence in an attached PostgreSQL database, nor a table whose
# default calls one: on PostgreSQL these two go to the database as they are (both dialects
# read them alike).
_DEAD_LETTER_IDS = "CREATE SEQUENCE IF NOT EXISTS gtm.dead_letter_ids"
_DEAD_LETTERS = """CREATE TABLE IF NOT EXISTS gtm.dead_letters (
    id BIGINT PRIMARY KEY DEFAULT nextval('gtm.dead_letter_ids'),
    destination VARCHAR NOT NULL,     -- hubspot, ...
    stream VARCHAR NOT NULL,          -- the sync ledger's stream: contacts, companies, ...
    object_type VARCHAR NOT NULL,     -- the CRM object type
    record_key VARCHAR NOT NULL,      -- email, domain
    source_table VARCHAR,             -- where a replay rebuilds the payload from
    payload VARCHAR NOT NULL,         -- JSON: what was sent, or would have been
    category VARCHAR NOT NULL,        -- transient (retried by later loads) | permanent
    error_code VARCHAR,               -- INVALID_OPTION, HTTP 503, ...
    error VARCHAR NOT NULL,           -- names the record, the property and the value
    attempts INTEGER NOT NULL,        -- deliveries that failed
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_failed_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL,          -- pending | delivered | skipped
    resolved_at TIMESTAMPTZ,
    run_id VARCHAR                    -- the run that failed it last
)"""
_SENT_AS_WRITTEN = frozenset({_DEAD_LETTER_IDS, _DEAD_LETTERS})

DDL: tuple[str, ...] = (
    "CREATE SCHEMA IF NOT EXISTS raw",
    "CREATE SCHEMA IF NOT EXISTS gtm",
    """CREATE TABLE IF NOT EXISTS raw.file_ingestions (
    source VARCHAR NOT NULL,
    file_path VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    status VARCHAR NOT NULL,          -- ingested | rejected | duplicate
    error VARCHAR,
    rows_total INTEGER NOT NULL,
    rows_accepted INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    mapping_version INTEGER NOT NULL,
    partition_date DATE NOT NULL,
    file_modified_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
)""",
    f"""CREATE TABLE IF NOT EXISTS raw.lead_rows (
    source VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    event_id VARCHAR,                 -- the form submission's id (webhook batches only)
    {_CANONICAL_COLUMNS},
    mapping_version INTEGER NOT NULL,
    partition_date DATE NOT NULL,
    landed_at TIMESTAMPTZ NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
)""",
    # Warehouses created before a canonical field was added to the registry.
    *(
        f"ALTER TABLE raw.lead_rows ADD COLUMN IF NOT EXISTS {field} VARCHAR"
        for field in CANONICAL_FIELDS
    ),
    """CREATE TABLE IF NOT EXISTS raw.rejected_rows (
    source VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    line INTEGER,
    field VARCHAR,
    value VARCHAR,
    reason VARCHAR NOT NULL,
    partition_date DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    mapping_version INTEGER
)""",
    # Warehouses created before rejections carried the mapping version that made them.
    "ALTER TABLE raw.rejected_rows ADD COLUMN IF NOT EXISTS mapping_version INTEGER",
    # Each file's rows as read by the newest mapping version it was ingested under; older
    # versions' rows stay in raw.lead_rows as history. A view is stored in the database that
    # holds it, so its SQL is what DuckDB and PostgreSQL both read (no QUALIFY).
    _CURRENT_LEAD_ROWS_VIEW,
    """CREATE TABLE IF NOT EXISTS raw.engagement_events (
    provider VARCHAR NOT NULL,
    event_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    batch_file VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    payload VARCHAR NOT NULL,
    partition_date DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS gtm.sync_ledger (
    destination VARCHAR NOT NULL,
    object_type VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    crm_id VARCHAR,
    payload_hash VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (destination, object_type, record_key)
)""",
    """CREATE TABLE IF NOT EXISTS gtm.crm_sync_log (
    run_id VARCHAR,
    destination VARCHAR NOT NULL,
    object_type VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    crm_id VARCHAR,
    action VARCHAR NOT NULL,          -- created | updated | unchanged | failed
    payload VARCHAR NOT NULL,
    kept_properties VARCHAR,          -- properties left alone because a rep edited them
    error VARCHAR,
    synced_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS raw.crm_contact_changes (
    feed VARCHAR NOT NULL,            -- webhook | poll
    change_type VARCHAR NOT NULL,     -- creation | property | record (a poll's first sight)
    object_id VARCHAR NOT NULL,
    email VARCHAR,
    property VARCHAR,                 -- NULL for creation and record rows
    value VARCHAR,                    -- record rows: every tracked property, as JSON
    changed_at TIMESTAMPTZ NOT NULL,
    change_source VARCHAR,            -- CRM_UI, INTEGRATION, API, ... when known
    is_echo BOOLEAN NOT NULL,         -- the CRM reporting back the pipeline's own write
    event_id VARCHAR,                 -- HubSpot's eventId (webhook rows)
    dedupe_key VARCHAR NOT NULL,      -- hubspot:<eventId> | <object id>:<modified ms>[:<property>]
    landed_file VARCHAR,              -- the webhook batch file
    loaded_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
)""",
    """CREATE TABLE IF NOT EXISTS gtm.crm_contacts (
    object_id VARCHAR PRIMARY KEY,
    email VARCHAR,
    properties VARCHAR NOT NULL,          -- JSON: tracked property -> value
    property_changed_at VARCHAR NOT NULL, -- JSON: tracked property -> epoch millis of its value
    last_modified TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    last_change_source VARCHAR,           -- of the last change that was not an echo
    last_change_at TIMESTAMPTZ
)""",
    """CREATE TABLE IF NOT EXISTS gtm.identities (
    identity_key VARCHAR PRIMARY KEY,
    email VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS gtm.cdc_cursors (
    stream VARCHAR PRIMARY KEY,
    high_water_mark BIGINT NOT NULL,      -- epoch millis
    updated_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS gtm.enrichment_cache (
    domain VARCHAR PRIMARY KEY,
    found BOOLEAN,                        -- NULL until the API has answered once
    firmographics VARCHAR,                -- JSON, when found
    fetched_at TIMESTAMPTZ,               -- when the API last answered
    error VARCHAR                         -- why the last lookup failed; NULL once answered
)""",
    # The dead-letter queue (lib/dlq.py): every record a load could not deliver.
    _DEAD_LETTER_IDS,
    _DEAD_LETTERS,
    # Sequence enrollments (lib/enrollment.py): one row per idempotency key, and every step.
    """CREATE TABLE IF NOT EXISTS gtm.sequence_enrollments (
    idempotency_key VARCHAR PRIMARY KEY,  -- <sequence key>:<email>
    email VARCHAR NOT NULL,
    sequence_key VARCHAR NOT NULL,        -- a key of config/sequences.yaml
    sequence_name VARCHAR NOT NULL,       -- the sequence's name in the sequencer
    intent INTEGER NOT NULL,              -- 1, 2, ...: a corrected lead is a new intent
    status VARCHAR NOT NULL,              -- held | sending | enrolled | cancelled | failed
    reason VARCHAR,                       -- why cancelled or failed; what the sequencer said
    fingerprint VARCHAR NOT NULL,         -- sha256 of what would be sent
    payload VARCHAR NOT NULL,             -- JSON: prospect attributes and mailbox
    held_at TIMESTAMPTZ NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,          -- end of the quality window, or the next retry
    attempts INTEGER NOT NULL,            -- claims of this intent so far
    claimed_by VARCHAR,                   -- host:pid:token of the release sending it
    claim_expires_at TIMESTAMPTZ,
    prospect_id BIGINT,
    sequence_state_id BIGINT,
    updated_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
)""",
    """CREATE TABLE IF NOT EXISTS gtm.sequence_enrollment_log (
    logged_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR,
    idempotency_key VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    sequence_key VARCHAR NOT NULL,
    intent INTEGER NOT NULL,
    event VARCHAR NOT NULL,               -- held | cancelled | claimed | reclaimed | enrolled |
                                          -- already_in_sequence | retry | failed
    status VARCHAR NOT NULL,              -- the key's status after the event
    reason VARCHAR,
    attempt INTEGER NOT NULL,
    claimed_by VARCHAR,
    prospect_id BIGINT,
    sequence_state_id BIGINT
)""",
    # Pipeline observability (lib/metrics.py): one row per run, stage and asset.
    """CREATE TABLE IF NOT EXISTS gtm.stage_metrics (
    run_id VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,               -- extract | transform | load
    asset VARCHAR NOT NULL,
    partition_key VARCHAR,                -- the landing day; first..last for a range
    records_in BIGINT NOT NULL,
    records_out BIGINT NOT NULL,
    rejected BIGINT NOT NULL,             -- refused for the data's sake
    dead_lettered BIGINT NOT NULL,        -- queued in gtm.dead_letters
    failed BIGINT NOT NULL,               -- not handled because a system failed
    error_rate DOUBLE NOT NULL,           -- (rejected + failed) / records_in
    latency_samples BIGINT NOT NULL,      -- records handled for the first time
    latency_p50_s DOUBLE,                 -- landing -> the stage's end (load: the CRM's
    latency_p95_s DOUBLE,                 -- confirmation), seconds
    latency_max_s DOUBLE,
    completeness VARCHAR NOT NULL,        -- JSON: field -> share of records holding it
    unclassified_title_share DOUBLE,      -- of records with a title, function 'other'
    unmatched_country_share DOUBLE,       -- of records with a country, no country code
    recorded_at TIMESTAMPTZ NOT NULL
)""",
)


# Warehouses whose tables this process has already made sure of: a run's steps share one.
_PREPARED: set[str] = set()

# The attached PostgreSQL database's name in DuckDB's catalog, made the default one.
POSTGRES_CATALOG = "warehouse"
# Held while one process creates or alters the pipeline's tables in PostgreSQL, so two
# processes starting at once do not race on CREATE SCHEMA / CREATE TABLE IF NOT EXISTS.
_DDL_LOCK_KEY = 7_461_826_330_128_577_001
_DDL_TRIES = 3
# Which DDL made a PostgreSQL warehouse's tables, recorded with them: a process that finds
# its own DDL there has nothing to make. Running it again anyway would take an exclusive
# lock on every table it alters and on the view it replaces, and wait there for the
# queries of running steps, which may wait in turn for a table it already holds.
_DDL_MARK = hashlib.sha256("\n".join(DDL).encode()).hexdigest()[:16]
_DDL_MARK_TABLE = "gtm.warehouse_ddl"
_POSTGRES_SCHEMES = ("postgresql", "postgres")


class WarehouseError(RuntimeError):
    """The warehouse URL is not usable."""


@dataclass(frozen=True)
class Warehouse:
    """Where the warehouse lives; opens short-lived connections."""

    url: str = field(repr=False)  # may carry a password: never printed whole

    @property
    def is_postgres(self) -> bool:
        return urlsplit(self.url).scheme in _POSTGRES_SCHEMES

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages and logs."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()

    @property
    def duckdb_path(self) -> Path:
        """The DuckDB file of a ``duckdb:///`` warehouse."""
        prefix = "duckdb:///"
        if self.url.startswith(prefix):
            return Path(self.url[len(prefix) :])
        if self.is_postgres:
            raise WarehouseError(
                f"GTM_WAREHOUSE_URL {self.display_url} is a PostgreSQL warehouse: it has no "
                "DuckDB file"
            )
        raise WarehouseError(
            f"GTM_WAREHOUSE_URL {self.display_url.split('://')[0]}://... is not supported; "
            "expected duckdb:///<path> or postgresql://user@host:port/database"
        )

    @property
    def postgres(self) -> PostgresLocation:
        """Host, port, user, password and database of a ``postgresql://`` warehouse."""
        parts = urlsplit(self.url)
        if parts.scheme not in _POSTGRES_SCHEMES:
            raise WarehouseError(
                f"GTM_WAREHOUSE_URL {self.display_url} is not a PostgreSQL warehouse"
            )
        database = unquote(parts.path.lstrip("/"))
        try:
            port = parts.port or 5432
        except ValueError as exc:
            raise WarehouseError(f"GTM_WAREHOUSE_URL {self.display_url}: {exc}") from None
        if not parts.hostname or not database:
            raise WarehouseError(
                f"GTM_WAREHOUSE_URL {self.display_url} names no host or no database; "
                "expected postgresql://user[:password]@host[:port]/database"
            )
        return PostgresLocation(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=database,
            sslmode=dict(parse_qsl(parts.query)).get("sslmode"),
        )

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the pipeline's tables present.

        DuckDB lets one process hold the file for writing; another process that wants it
        (a concurrent run's step, a dry run) waits for it rather than failing at once.
        PostgreSQL takes writers from any number of processes.
        """
        if self.is_postgres:
            con = self._attach_postgres(read_only=read_only)
        else:
            path = self.duckdb_path
            path.parent.mkdir(parents=True, exist_ok=True)
            con = _connect_with_retry(path, read_only=read_only and path.exists())
        try:
            if not read_only and self.url not in _PREPARED:
                self._create_tables(con)
                _PREPARED.add(self.url)
            yield con
        finally:
            con.close()

    @contextmanager
    def connect_without_waiting(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection taken at once, for sensors that must not queue behind a
        run: None while a run writes to a DuckDB file (ask again later). A DuckDB warehouse
        not created yet reads as empty; tables may be missing on either."""
        if self.is_postgres:
            with self.connect(read_only=True) as con:
                yield con
            return
        path = self.duckdb_path
        if not path.exists():
            with duckdb.connect(":memory:") as empty:
                yield empty
            return
        try:
            con = duckdb.connect(str(path), read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException):
            # Another process writes to it, or this one holds it open for writing.
            yield None
            return
        try:
            yield con
        finally:
            con.close()

    def _attach_postgres(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        location = self.postgres
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"LOAD '{_postgres_extension()}'")
            options = "TYPE postgres, READ_ONLY" if read_only else "TYPE postgres"
            con.execute(f"ATTACH {_literal(self.url)} AS {POSTGRES_CATALOG} ({options})")
            con.execute(f"USE {POSTGRES_CATALOG}")
        except duckdb.Error as exc:
            con.close()
            # DuckDB's message repeats the URL, password and all: keep only libpq's reason.
            reason = str(exc).replace(self.url, self.display_url)
            reason = reason.split(f'"{self.display_url}": ', 1)[-1]
            if location.password:
                reason = reason.replace(location.password, "***")
            raise WarehouseError(
                f"cannot open the PostgreSQL warehouse at host {location.host}:{location.port}, "
                f"database {location.database!r} (GTM_WAREHOUSE_URL {self.display_url}): "
                f"{reason.strip()}"
            ) from None
        return con

    def _create_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        if not self.is_postgres:
            for statement in DDL:
                con.execute(statement)
            return
        if _made_by_this_ddl(con):
            return
        # One transaction under an advisory lock, so that processes starting at once create
        # the tables one after the other and a failure leaves nothing half made. A process
        # that waited for the lock reads the catalog as it was before it waited, and may
        # take the tables just created for missing: it tries again, and then finds them.
        for attempt in range(1, _DDL_TRIES + 1):
            con.execute("BEGIN")
            try:
                _postgres_execute(con, f"SELECT pg_advisory_xact_lock({_DDL_LOCK_KEY})")
                for statement in DDL:
                    if statement in _SENT_AS_WRITTEN:
                        _postgres_execute(con, statement)
                    else:
                        con.execute(statement)
                _postgres_execute(
                    con, f"CREATE TABLE IF NOT EXISTS {_DDL_MARK_TABLE} (ddl_sha256 TEXT NOT NULL)"
                )
                _postgres_execute(con, f"DELETE FROM {_DDL_MARK_TABLE}")
                _postgres_execute(con, f"INSERT INTO {_DDL_MARK_TABLE} VALUES ('{_DDL_MARK}')")
                con.execute("COMMIT")
            except duckdb.Error:
                # A failed COMMIT has already rolled back.
                with suppress(duckdb.TransactionException):
                    con.execute("ROLLBACK")
                if attempt == _DDL_TRIES:
                    raise
            else:
                return
            finally:
                # DuckDB's picture of the catalog misses what PostgreSQL made by itself
                # or another process made meanwhile.
                con.execute("CALL pg_clear_cache()")


@dataclass(frozen=True)
class PostgresLocation:
    """Where a PostgreSQL warehouse is; the password is never printed."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    sslmode: str | None = None


def is_write_conflict(error: duckdb.Error) -> bool:
    """Whether ``error`` is a transaction that lost a write conflict to another connection
    and may simply be tried again: DuckDB's own conflict, or PostgreSQL's serialization
    failure, deadlock or unique violation (two transactions inserting the same key: the
    one that waited for the other's commit; tried again, it reads the row the other wrote),
    which DuckDB passes on as plain errors."""
    if isinstance(error, duckdb.TransactionException):
        return True
    message = str(error)
    return any(
        conflict in message
        for conflict in (
            "could not serialize access",
            "deadlock detected",
            "duplicate key value violates unique constraint",
        )
    )


def _made_by_this_ddl(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the attached PostgreSQL warehouse's tables were made by this DDL (its mark
    says so); read without a lock on any of them."""
    query = f"SELECT ddl_sha256 FROM {_DDL_MARK_TABLE}"
    try:
        marks = con.execute(
            f"SELECT * FROM postgres_query({_literal(POSTGRES_CATALOG)}, {_literal(query)})"
        ).fetchall()
    except duckdb.Error:  # no mark: a new warehouse, or one made before marks
        return False
    return marks == [(_DDL_MARK,)]


def _postgres_execute(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run ``sql`` in PostgreSQL itself, in the connection's transaction."""
    con.execute("CALL postgres_execute(?, ?)", [POSTGRES_CATALOG, sql])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _postgres_extension() -> Path:
    """DuckDB's postgres_scanner extension, as the PyPI package of DuckDB's version ships it
    (extensions.duckdb.org may be out of reach)."""
    version = duckdb.__version__
    path = (
        Path(duckdb_extension_postgres_scanner.__file__).parent
        / "extensions"
        / f"v{version}"
        / "postgres_scanner.duckdb_extension"
    )
    if not path.exists():
        raise WarehouseError(
            f"{path} does not exist: duckdb-extension-postgres-scanner must be of the "
            f"installed DuckDB's version, {version}"
        )
    return path


def _connect_with_retry(
    path: Path, *, read_only: bool, timeout_s: float = 120.0
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.BinderException) as exc:
            # Another process holds the file's lock; or another thread of this process is
            # opening the same file at this moment (DuckDB's "unique file handle conflict").
            message = str(exc).lower()
            busy = "lock" in message or "unique file handle conflict" in message
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 1.0)
