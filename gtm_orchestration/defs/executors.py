"""Where a run's steps execute, chosen by ``GTM_EXECUTOR``.

- ``in_process`` (the default): every step in the run's own process, one after another.
  Steps share the warehouse pool and run one after another anyway; one process per run
  spares each step a fresh import of the code location.
- ``multiprocess``: each step in a process of its own, so a run's steps that do not depend
  on each other run side by side; the pools hold across processes, as across runs. Step
  processes fork from a server that imported the code location once per run
  (``step_server.py``), rather than each starting an interpreter and importing it again.
- ``celery``: each step is a task on a Celery broker (``GTM_CELERY_BROKER_URL``, by default
  RabbitMQ on ``pyamqp://guest@127.0.0.1:5672//``), executed by whichever Celery worker takes
  it (``celery -A gtm_orchestration.celery_app worker``, see the README); the step's events
  come back through the Dagster instance and the result backend (``GTM_CELERY_BACKEND_URL``,
  by default ``rpc://``: the broker itself).

The broker and backend URLs may carry credentials: they are read from the environment of
the process that executes the run (never written into the definitions or a run's
configuration) and never logged.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os

import dagster as dg

from gtm_orchestration.lib.warm_up import transform_sample_leads
from gtm_orchestration.settings import _choice

EXECUTORS = ("in_process", "multiprocess", "celery")
BROKER_URL_VARIABLE = "GTM_CELERY_BROKER_URL"
BACKEND_URL_VARIABLE = "GTM_CELERY_BACKEND_URL"
DEFAULT_BROKER_URL = "pyamqp://guest@127.0.0.1:5672//"
DEFAULT_BACKEND_URL = "rpc://"


# What the multiprocess executor's fork server imports before it forks a step's process.
STEP_SERVER_PRELOAD = ["dagster._core.executor.multiprocess", "gtm_orchestration.step_server"]
multiprocess_run_executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": STEP_SERVER_PRELOAD}}},
    name="multiprocess",
)


def executor_name() -> str:
    """``GTM_EXECUTOR``: ``in_process`` (when unset), ``multiprocess`` or ``celery``."""
    return _choice("GTM_EXECUTOR", EXECUTORS)


def celery_broker_url() -> str:
    """The Celery broker's URL: ``GTM_CELERY_BROKER_URL``, else the local RabbitMQ."""
    return os.environ.get(BROKER_URL_VARIABLE) or DEFAULT_BROKER_URL


def celery_backend_url() -> str:
    """The Celery result backend's URL: ``GTM_CELERY_BACKEND_URL``, else ``rpc://``."""
    return os.environ.get(BACKEND_URL_VARIABLE) or DEFAULT_BACKEND_URL


def _from_environment(variable: str, default: str) -> str | dict[str, str]:
    # A set variable stays a reference, resolved where the run executes, so a password in
    # the URL never enters the job's definition or the run's stored configuration.
    return {"env": variable} if os.environ.get(variable) else default


def pipeline_executor() -> dg.ExecutorDefinition:
    """The executor ``GTM_EXECUTOR`` names, configured from the environment."""
    name = executor_name()
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {
                "broker": _from_environment(BROKER_URL_VARIABLE, DEFAULT_BROKER_URL),
                "backend": _from_environment(BACKEND_URL_VARIABLE, DEFAULT_BACKEND_URL),
            },
            name="celery",
        )
    if name == "multiprocess":
        return multiprocess_run_executor
    return dg.in_process_executor


def warm_up_run_worker() -> None:
    """What a run worker of ``PrestartedRunLauncher`` prepares before its run arrives (its
    ``warm_up`` hook in ``dagster.yaml``).

    In process, the run's transform: the dictionaries and rules, loaded by dry-running the
    bundled sample drop (``lib/warm_up.py``). Multiprocess, the server the run's steps fork
    from: started by the run's first step instead, it would import the code location while
    that step holds its pool's slot, and every other run's step in that pool would wait. The
    executor asks for the same modules, so it uses this server as it is. With Celery the
    steps run in the workers, which load the code when they start.
    """
    name = executor_name()
    if name == "in_process":
        transform_sample_leads()
    elif name == "multiprocess":
        multiprocessing.get_context("forkserver").set_forkserver_preload(STEP_SERVER_PRELOAD)
        multiprocessing.forkserver.ensure_running()
