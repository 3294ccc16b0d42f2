"""The Dagster instance's configuration: ``$DAGSTER_HOME/dagster.yaml``.

The file is generated from the repository's ``dagster.yaml`` (run queue, pools, run
launcher, run monitoring). Storage is SQLite under ``$DAGSTER_HOME``, or PostgreSQL
(``dagster-postgres``: runs, event logs, schedules and sensor state) when ``DAGSTER_PG_URL``
is set. The generated file refers to the variable, never to its value, so a password in the
URL is neither written to disk nor logged: every process that opens the instance (the
commands, the daemon, the webserver, the run workers) reads it from its own environment.

A generated file carries ``MANAGED_MARKER`` and is rewritten whenever the repository's file
or ``DAGSTER_PG_URL`` would make it different. A ``dagster.yaml`` without the marker is the
user's own and is left alone, unless ``DAGSTER_PG_URL`` is set and that file keeps the
instance off PostgreSQL: that is refused with ``InstanceConfigError`` rather than quietly
storing runs in SQLite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

INSTANCE_TEMPLATE = Path(__file__).resolve().parent.parent / "dagster.yaml"
PG_URL_VARIABLE = "DAGSTER_PG_URL"
MANAGED_MARKER = "# gtm: managed instance configuration"
_HEADER = f"""{MANAGED_MARKER}
# Generated from the repository's dagster.yaml, and rewritten whenever that file or
# {PG_URL_VARIABLE} changes it. To keep a dagster.yaml of your own here, delete the first line.
"""
# The storage section when DAGSTER_PG_URL is set: the variable's name, not its value.
POSTGRES_STORAGE = f"""
# Runs, event logs, schedules and sensor state in PostgreSQL, at the URL in ${PG_URL_VARIABLE}
# (read by every process that opens the instance; never written here).
storage:
  postgres:
    postgres_url:
      env: {PG_URL_VARIABLE}
"""


class InstanceConfigError(Exception):
    """``$DAGSTER_HOME/dagster.yaml`` contradicts what the environment asks for."""


def postgres_requested() -> bool:
    """True when ``DAGSTER_PG_URL`` is set (an empty variable counts as unset)."""
    return bool(os.environ.get(PG_URL_VARIABLE))


def instance_yaml(*, postgres: bool | None = None) -> str:
    """The generated ``dagster.yaml``: the repository's, plus the PostgreSQL storage section
    when ``postgres`` (default: when ``DAGSTER_PG_URL`` is set)."""
    postgres = postgres_requested() if postgres is None else postgres
    text = _HEADER + INSTANCE_TEMPLATE.read_text()
    return text + POSTGRES_STORAGE if postgres else text


def storage_kind(config: dict[str, Any] | None) -> str:
    """``postgres``, ``sqlite`` (Dagster's default) or ``other``: where an instance
    configuration keeps its runs."""
    config = config or {}
    storage = config.get("storage") or {}
    if "postgres" in storage:
        return "postgres"
    if storage:
        return "sqlite" if "sqlite" in storage else "other"
    run_storage = config.get("run_storage") or {}
    if not run_storage:
        return "sqlite"
    module = str(run_storage.get("module", ""))
    if module.startswith("dagster_postgres"):
        return "postgres"
    return "sqlite" if "sqlite" in module else "other"


def write_instance_config(home: Path) -> Path:
    """Create ``home`` and bring its ``dagster.yaml`` up to date; returns the file.

    Raises ``InstanceConfigError`` when ``DAGSTER_PG_URL`` is set and a ``dagster.yaml`` of
    the user's own (no ``MANAGED_MARKER``) does not store the instance in PostgreSQL.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    wanted = instance_yaml()
    if path.exists():
        current = path.read_text()
        if current == wanted:
            return path
        if not current.startswith(MANAGED_MARKER):
            _check_own_config(path, current)
            return path
    # Written whole under another name, then renamed: a process starting meanwhile reads
    # the old file or the new one, never half of one.
    partial = path.with_name(f".dagster.yaml.{os.getpid()}.part")
    partial.write_text(wanted)
    partial.replace(path)
    return path


def _check_own_config(path: Path, text: str) -> None:
    if not postgres_requested():
        return
    try:
        kind = storage_kind(yaml.safe_load(text))
    except yaml.YAMLError as error:
        raise InstanceConfigError(f"{path}: not valid YAML: {error}") from None
    if kind != "postgres":
        raise InstanceConfigError(
            f"{path}: {PG_URL_VARIABLE} is set, but this dagster.yaml (written by hand or by an "
            f"earlier version, not generated) stores the instance in {kind} storage. Delete "
            f"it to have it generated with PostgreSQL storage, or add:\n"
            f"storage:\n  postgres:\n    postgres_url:\n      env: {PG_URL_VARIABLE}"
        )


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` (default ``./.dagster``, set in the environment for the processes
    started from here), holding an up-to-date ``dagster.yaml``; returns the folder."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster").resolve())))
    write_instance_config(home)
    return home
