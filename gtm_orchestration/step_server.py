"""What a run's step processes start with under ``GTM_EXECUTOR=multiprocess``.

The multiprocess executor forks each step's process from a server process it starts once
per run, which imports this module first. Importing it imports the pipeline's code location,
builds its repository (every job and asset resolved) and opens the Dagster instance once
(importing its storage's driver and checking its schema), so a step's process starts with
all of that done instead of doing it again: seconds per step on a small machine.
"""

import os

import dagster as dg

from gtm_orchestration.definitions import defs

defs.get_repository_def().load_all_definitions()


def _open_instance_once() -> None:
    """Open and close the instance of ``$DAGSTER_HOME``; nothing stays connected, so no
    connection is shared with the processes forked from here."""
    if not os.environ.get("DAGSTER_HOME"):
        return
    try:
        # Opening it creates the storages: drivers imported, engines made, schema checked.
        with dg.DagsterInstance.get():
            pass
    except Exception:  # noqa: BLE001 - only a head start: the step opens the instance itself
        return


_open_instance_once()
