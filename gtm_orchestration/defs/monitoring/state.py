"""Where alerting keeps its state: the Dagster instance's key-value store.

Open incidents, what was sent when (rate limits, reminders), failed load runs and runs
already alerted live in one JSON document beside the sensors' cursors, in the instance's
storage (SQLite, or PostgreSQL with dagster-postgres), for three reasons:

- the warehouse (DuckDB) takes one writer at a time: sensors that wrote to it would wait
  behind a load's writes, or hold up a real-time run, every minute;
- three sensors share the state (the monitor resolves the incident a run failure opened),
  and the cursors of run status sensors belong to Dagster;
- it lives and moves with the instance, so a restarted daemon neither pages again nor
  forgets to resolve.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from gtm_orchestration.lib.alerts import AlertState

ALERT_STATE_KEY = "gtm/alerts/state"
# The sensors of one code location are evaluated in one process: one at a time here.
_LOCK = threading.Lock()


def read_alert_state(instance: dg.DagsterInstance) -> AlertState:
    """The alert state as last saved (for reading only)."""
    stored = instance.run_storage.get_cursor_values({ALERT_STATE_KEY}).get(ALERT_STATE_KEY)
    return AlertState.from_json(stored)


@contextmanager
def alert_state(instance: dg.DagsterInstance) -> Iterator[AlertState]:
    """The alert state, saved back when the block ends, whether or not it raised (what was
    delivered before a failure stays recorded)."""
    with _LOCK:
        state = read_alert_state(instance)
        try:
            yield state
        finally:
            instance.run_storage.set_cursor_values({ALERT_STATE_KEY: state.to_json()})
