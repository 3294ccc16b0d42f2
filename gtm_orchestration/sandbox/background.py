"""Run an ASGI app with uvicorn on a background thread: for tests, the demo and other services.

Port 0 (the default) binds an ephemeral port chosen by the OS and reads it back, so servers
started side by side (parallel tests, a test run beside a running demo) never collide.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for a server started in another process."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class BackgroundServer:
    """An ASGI app served by uvicorn on a daemon thread; a context manager.

    ``start()`` returns once the server accepts connections; ``base_url`` is then its root,
    e.g. ``http://127.0.0.1:54321``. ``stop()`` shuts it down gracefully and runs the app's
    lifespan shutdown.
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Start serving and wait until the socket is bound; returns self."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self._requested_port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread, so Ctrl-C still reaches
        # whoever started this server.
        thread = threading.Thread(target=server.run, name=f"uvicorn-{self.host}", daemon=True)
        thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(
                    f"server on {self.host}:{self._requested_port} exited during startup"
                )
            if time.monotonic() > deadline:
                server.should_exit = True
                raise TimeoutError(
                    f"server on {self.host}:{self._requested_port} did not start within "
                    f"{self._startup_timeout_s} s"
                )
            time.sleep(0.01)
        self._server, self._thread = server, thread
        self._port = _bound_port(server)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to finish."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=self._startup_timeout_s + 5)
        self._server = self._thread = None
        self._port = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _bound_port(server: uvicorn.Server) -> int:
    for listener in server.servers:
        for bound in listener.sockets:
            return int(bound.getsockname()[1])
    raise RuntimeError("uvicorn started without a listening socket")
