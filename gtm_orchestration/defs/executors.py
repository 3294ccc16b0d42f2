"""Where a run's steps execute, chosen by ``GTM_EXECUTOR``.

- ``in_process`` (the default): every step in the run's own process, one after another.
  Steps share the warehouse pool and run one after another anyway; one process per run
  spares each step a fresh import of the code location.
- ``multiprocess``: each step in a child process of the run's process.
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

import os

import dagster as dg

from gtm_orchestration.settings import _choice

EXECUTORS = ("in_process", "multiprocess", "celery")
BROKER_URL_VARIABLE = "GTM_CELERY_BROKER_URL"
BACKEND_URL_VARIABLE = "GTM_CELERY_BACKEND_URL"
DEFAULT_BROKER_URL = "pyamqp://guest@127.0.0.1:5672//"
DEFAULT_BACKEND_URL = "rpc://"


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
        return dg.multiprocess_executor
    return dg.in_process_executor
