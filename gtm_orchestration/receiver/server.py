"""Starting the receiver: in the foreground for ``gtm receiver``, or on a background thread.

``python -m gtm_orchestration.receiver.server --data-dir DIR --port PORT`` serves it in the
foreground, with its secrets from the environment (see ``config``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import uvicorn

from gtm_orchestration.receiver.app import create_receiver_app
from gtm_orchestration.receiver.config import RECEIVER_HOST, ReceiverConfig
from gtm_orchestration.sandbox.background import BackgroundServer
from gtm_orchestration.settings import RECEIVER_PORT, Settings


def serve(
    data_dir: Path,
    host: str = RECEIVER_HOST,
    port: int = RECEIVER_PORT,
    *,
    storage_root: str | os.PathLike[str] | None = None,
    max_batch_events: int = 500,
    max_batch_age_s: float = 0.25,
) -> None:
    """Serve the receiver on ``host:port`` until interrupted, landing events under
    ``storage_root`` (by default ``data_dir``), its dedupe store under ``data_dir``.

    On Ctrl-C or SIGTERM the open batch is committed before the process exits.
    """
    config = ReceiverConfig.from_env()
    app = create_receiver_app(
        data_dir,
        storage_root=storage_root,
        hubspot_client_secret=config.hubspot_client_secret,
        webhook_secret=config.webhook_secret,
        public_base_url=config.public_base_url,
        max_batch_events=max_batch_events,
        max_batch_age_s=max_batch_age_s,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


class ReceiverServer(BackgroundServer):
    """The receiver on a background thread: ``with ReceiverServer(data_dir) as receiver: ...``.

    Secrets and the public URL come from the environment unless given in ``app_options``
    (the keyword arguments of ``create_receiver_app``). Port 0, the default, picks a free port.
    """

    def __init__(
        self, data_dir: Path, host: str = RECEIVER_HOST, port: int = 0, **app_options: Any
    ) -> None:
        self.data_dir = data_dir
        config = ReceiverConfig.from_env()
        options: dict[str, Any] = {
            "hubspot_client_secret": config.hubspot_client_secret,
            "webhook_secret": config.webhook_secret,
            "public_base_url": config.public_base_url,
            **app_options,
        }
        super().__init__(create_receiver_app(data_dir, **options), host=host, port=port)

    def __enter__(self) -> ReceiverServer:
        self.start()
        return self


def main(argv: list[str] | None = None) -> None:
    """Parse ``--data-dir --host --port`` (and the batching limits) and serve."""
    parser = argparse.ArgumentParser(
        prog="python -m gtm_orchestration.receiver.server",
        description="Serve the GTM webhook receiver in the foreground.",
    )
    parser.add_argument("--data-dir", type=Path, help="default: $GTM_DATA_DIR or ./data")
    parser.add_argument("--host", default=RECEIVER_HOST)
    parser.add_argument("--port", type=int, default=RECEIVER_PORT)
    parser.add_argument("--max-batch-events", type=int, default=500)
    parser.add_argument("--max-batch-age-s", type=float, default=0.25)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    serve(
        (args.data_dir or settings.data_dir).resolve(),
        # GTM_STORAGE_URL when set; else the landing zone is under the data folder.
        storage_root=settings.storage_root if os.environ.get("GTM_STORAGE_URL") else None,
        host=args.host,
        port=args.port,
        max_batch_events=args.max_batch_events,
        max_batch_age_s=args.max_batch_age_s,
    )


if __name__ == "__main__":
    main()
