"""How a run of the pipeline executes its steps (``GTM_RUN_EXECUTOR``).

``in_process`` (the default): every step in the run's own process, one after another. The
steps that write the warehouse take its pool one at a time anyway, and a real-time run
starts its first step without importing the code location again.

``multiprocess``: each step in a process of its own, so a run's steps that do not depend
on each other run side by side. The pools hold across processes, as they do across runs.
"""

import multiprocessing
import multiprocessing.forkserver

import dagster as dg

from gtm_orchestration.lib.warm_up import transform_sample_leads
from gtm_orchestration.settings import RUN_EXECUTORS, Settings

# Step processes fork from a server that imported the code location once per run (see
# step_server.py), rather than each step starting a fresh interpreter (Dagster's default,
# spawn) and importing it again.
STEP_SERVER_PRELOAD = ["dagster._core.executor.multiprocess", "gtm_orchestration.step_server"]
multiprocess_run_executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": STEP_SERVER_PRELOAD}}}
)

EXECUTORS = dict(
    zip(RUN_EXECUTORS, (dg.in_process_executor, multiprocess_run_executor), strict=True)
)


def run_executor() -> dg.ExecutorDefinition:
    """The executor ``GTM_RUN_EXECUTOR`` names for the pipeline's runs (default in-process)."""
    return EXECUTORS[Settings.from_env().run_executor]


def warm_up_run_worker() -> None:
    """What a run worker of ``PrestartedRunLauncher`` prepares before its run arrives (its
    ``warm_up`` hook in ``dagster.yaml``).

    In process, the run's transform: the dictionaries and rules, loaded by dry-running the
    bundled sample drop (``lib/warm_up.py``). Multiprocess, the server the run's steps fork
    from: started by the run's first step instead, it would import the code location while
    that step holds its pool's slot, and every other run's step in that pool would wait. The
    executor asks for the same modules, so it uses this server as it is.
    """
    if Settings.from_env().run_executor != "multiprocess":
        transform_sample_leads()
        return
    multiprocessing.get_context("forkserver").set_forkserver_preload(STEP_SERVER_PRELOAD)
    multiprocessing.forkserver.ensure_running()
