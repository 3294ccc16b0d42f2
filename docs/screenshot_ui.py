"""Screenshots of the Dagster UI against the running demo, for the README.

    .venv/bin/python docs/screenshot_ui.py [--wait 90] [--out docs/images]

Starts `gtm demo` in a temporary data folder and instance (sandbox, receiver, sample data,
one pass over every asset, then demo traffic and `dagster dev` on http://127.0.0.1:3000),
lets the live traffic run for ``--wait`` seconds so that the assets have several
materializations to plot, then has headless Chromium (Debian's `chromium`) load each page
of PAGES and save it as a PNG. The demo is stopped afterwards. Needs ports 3000, 8765 and
8787 free.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
UI = "http://127.0.0.1:3000"
# What a GTM engineer opens to see throughput, errors and latency: the load's metadata
# plotted over its materializations, the extraction's, and the runs.
PAGES = {
    "ui-load-plots.png": "/assets/hubspot_contacts?view=events",
    "ui-extract-plots.png": "/assets/raw_lead_rows?view=events",
    "ui-runs.png": "/runs",
}
# Chromium's own connections are refused by a machine without internet; these flags keep
# it from trying.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
)


def _wait_for(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def capture(chromium: str, url: str, path: Path, profile: Path) -> None:
    """Have headless Chromium load ``url`` and save the page as ``path``."""
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wait", type=float, default=90, help="seconds of live traffic first")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gtm-screenshot-") as scratch:
        env = dict(
            os.environ,
            GTM_DATA_DIR=str(Path(scratch) / "data"),
            DAGSTER_HOME=str(Path(scratch) / "dagster_home"),
        )
        demo = subprocess.Popen(
            [sys.executable, "-m", "gtm_orchestration.cli", "demo"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        try:
            _wait_for(f"{UI}/server_info", timeout_s=600)
            time.sleep(args.wait)
            for name, page in PAGES.items():
                capture(chromium, f"{UI}{page}", args.out / name, Path(scratch) / "chromium")
                print(f"{args.out / name}: {UI}{page}")
        finally:
            os.killpg(demo.pid, signal.SIGTERM)
            demo.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
