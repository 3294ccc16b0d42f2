"""Running the real dbt over a test's warehouse, as the warehouse code location runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gtm_orchestration.defs.warehouse.dbt import DBT_PROJECT_DIR, dbt_environment
from gtm_orchestration.lib.warehouse import Warehouse


def dbt_build(
    warehouse: Warehouse, tmp_path: Path, *models: str
) -> subprocess.CompletedProcess[str]:
    """``dbt build`` of ``models`` and everything they read, with their tests, over
    ``warehouse``; target and logs under ``tmp_path``. Returns the finished process."""
    command = [
        str(Path(sys.executable).parent / "dbt"),
        "build",
        "--select",
        *(f"+{model}" for model in models),
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(tmp_path / "dbt_target"),
        "--log-path",
        str(tmp_path / "dbt_logs"),
    ]
    env = os.environ | dbt_environment(warehouse.url)
    return subprocess.run(
        command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600
    )
