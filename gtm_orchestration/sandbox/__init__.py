"""Local, stateful emulators of the SaaS APIs the connectors speak, so everything runs offline.

``create_app`` builds the ASGI app, ``serve`` runs it in the foreground (``gtm sandbox``) and
``SandboxServer`` runs it on a background thread for tests and the demo.
"""

from gtm_orchestration.sandbox.app import create_app
from gtm_orchestration.sandbox.background import BackgroundServer, free_port
from gtm_orchestration.sandbox.server import SandboxServer, serve

__all__ = ["BackgroundServer", "SandboxServer", "create_app", "free_port", "serve"]
