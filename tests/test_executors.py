"""GTM_EXECUTOR chooses where a run's steps execute; the broker's URL stays in the environment."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.system_config.objects import ResolvedRunConfig

from gtm_orchestration.definitions import defs
from gtm_orchestration.defs.executors import pipeline_executor


@dg.asset
def probe() -> None:
    """A stand-in asset: only the executor of its job matters here."""


def _job(executor: dg.ExecutorDefinition) -> dg.JobDefinition:
    return dg.Definitions(assets=[probe], executor=executor).resolve_implicit_global_asset_job_def()


def test_steps_run_in_the_runs_process_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GTM_EXECUTOR", raising=False)
    assert pipeline_executor().name == "in_process"
    assert defs.resolve_job_def("lead_pipeline").executor_def.name == "in_process"
    monkeypatch.setenv("GTM_EXECUTOR", "multiprocess")
    assert pipeline_executor().name == "multiprocess"


def test_celery_takes_its_broker_from_the_environment_when_the_run_executes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GTM_EXECUTOR", "celery")
    monkeypatch.delenv("GTM_CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("GTM_CELERY_BACKEND_URL", raising=False)
    config = ResolvedRunConfig.build(_job(pipeline_executor()), {}).execution
    assert config.execution_engine_name == "celery"
    assert config.execution_engine_config["broker"] == "pyamqp://guest@127.0.0.1:5672//"
    assert config.execution_engine_config["backend"] == "rpc://"

    broker = "pyamqp://gtm:broker-password@rabbitmq:5672/gtm"
    monkeypatch.setenv("GTM_CELERY_BROKER_URL", broker)
    job = _job(pipeline_executor())
    # The password is not part of the job's definition (what the UI and the runs store)...
    assert "broker-password" not in dg.serialize_value(job.get_job_snapshot())
    # ...it is read where the run executes.
    monkeypatch.setenv("GTM_CELERY_BROKER_URL", broker + "-rotated")
    config = ResolvedRunConfig.build(job, {}).execution
    assert config.execution_engine_config["broker"] == broker + "-rotated"


def test_an_unknown_executor_is_refused_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GTM_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match="GTM_EXECUTOR='kubernetes': expected one of in_process"):
        pipeline_executor()
