"""Starting the sandbox: in the foreground for ``gtm sandbox``, or on a background thread."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from gtm_orchestration.sandbox.app import create_app
from gtm_orchestration.sandbox.background import BackgroundServer
from gtm_orchestration.settings import SANDBOX_HOST, SANDBOX_PORT


def serve(
    state_dir: Path,
    host: str = SANDBOX_HOST,
    port: int = SANDBOX_PORT,
    rate_limit: int = 190,
    rate_window_s: float = 10.0,
) -> None:
    """Serve the sandbox on ``host:port`` until interrupted, keeping state under ``state_dir``."""
    app = create_app(state_dir, rate_limit=rate_limit, rate_window_s=rate_window_s)
    uvicorn.run(app, host=host, port=port, log_level="info")


class SandboxServer(BackgroundServer):
    """The sandbox on a background thread: ``with SandboxServer(tmp_path) as sandbox: ...``.

    ``sandbox.base_url`` is the root for every emulated API (use it as HUBSPOT_BASE_URL).
    Port 0, the default, picks a free port.
    """

    def __init__(
        self,
        state_dir: Path,
        host: str = SANDBOX_HOST,
        port: int = 0,
        rate_limit: int = 190,
        rate_window_s: float = 10.0,
    ) -> None:
        self.state_dir = state_dir
        super().__init__(
            create_app(state_dir, rate_limit=rate_limit, rate_window_s=rate_window_s),
            host=host,
            port=port,
        )

    def __enter__(self) -> SandboxServer:
        self.start()
        return self
