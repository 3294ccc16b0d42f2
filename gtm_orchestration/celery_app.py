"""The Celery app of the step workers (``GTM_EXECUTOR=celery``).

Start a worker with::

    celery -A gtm_orchestration.celery_app worker --concurrency 1 -n steps-1@%h

It listens on the ``dagster`` queue of the broker the executor sends steps to
(``GTM_CELERY_BROKER_URL``, ``GTM_CELERY_BACKEND_URL``: the same variables, read here from
the worker's environment, so no URL or password is written to a file), and executes each
step it takes exactly as ``dagster_celery`` does: it rebuilds the run's job from the code
location, opens the run's Dagster instance and executes the one step, whose events go to
the instance. The worker needs the rest of the pipeline's environment too (the instance's
storage in PostgreSQL, ``GTM_WAREHOUSE_URL``, ``GTM_STORAGE_URL``, the CRM's URLs and
tokens), as a run worker does.

The pipeline's code location is imported when the worker starts, before its pool's
processes are forked, so a step does not pay that import.
"""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

import gtm_orchestration.definitions  # noqa: F401 - imported once, before the pool forks
from gtm_orchestration.defs.executors import celery_backend_url, celery_broker_url

app = make_app(
    CeleryExecutor.for_cli(broker=celery_broker_url(), backend=celery_backend_url()).app_args()
)
execute_plan = create_task(app)
