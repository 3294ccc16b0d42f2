"""Sending a digest by e-mail through the SMTP server of ``GTM_SMTP_URL``, or to the log.

``GTM_SMTP_URL`` is ``smtp://[user:password@]host[:port][?from=address]`` (port 25 by
default; upgraded with STARTTLS when the server offers it) or ``smtps://...`` (TLS from the
start, port 465 by default). Its password is never printed: the server is shown as
``smtp://host:port``.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_SENDER = "gtm-orchestration@localhost"
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True)
class Digest:
    """One digest: a subject line and a plain-text body (counts only, no personal data)."""

    subject: str
    text: str


@dataclass(frozen=True)
class SmtpServer:
    """Where digests are sent, read from ``GTM_SMTP_URL``."""

    scheme: Literal["smtp", "smtps"]
    host: str
    port: int
    sender: str = DEFAULT_SENDER
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a secret: never printed

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """Parse an SMTP URL; raises ValueError saying what was expected (without the
        password)."""
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.hostname or ''}"
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError(
                f"GTM_SMTP_URL {shown}...: expected smtp://[user:password@]host[:port] or "
                "smtps://..."
            )
        if not parts.hostname:
            raise ValueError(f"GTM_SMTP_URL {shown}: expected a host, e.g. smtp://mail.example.com")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ValueError(f"GTM_SMTP_URL {shown}: expected a port number") from exc
        sender = (parse_qs(parts.query).get("from") or [DEFAULT_SENDER])[0]
        return cls(
            scheme=parts.scheme,  # type: ignore[arg-type]
            host=parts.hostname,
            port=port,
            sender=sender,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    @property
    def display(self) -> str:
        """The server without credentials, for messages."""
        return f"{self.scheme}://{self.host}:{self.port}"


def email_message(digest: Digest, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The digest as an e-mail from ``sender`` to ``recipients``."""
    message = EmailMessage()
    message["Subject"] = digest.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{uuid.uuid4().hex}@gtm-orchestration>"
    message.set_content(digest.text)
    return message


def send_by_smtp(
    digest: Digest, server: SmtpServer, recipients: Sequence[str], timeout_s: float = 30.0
) -> None:
    """Send the digest through ``server``; raises smtplib.SMTPException or OSError when the
    server refuses it or cannot be reached."""
    message = email_message(digest, server.sender, recipients)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if server.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout_s, context=context)
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=timeout_s)
    with smtp:
        smtp.ehlo()
        if server.scheme == "smtp" and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        if server.username:
            smtp.login(server.username, server.password or "")
        smtp.send_message(message)


def deliver_digest(
    digest: Digest,
    smtp_url: str | None,
    recipients: Sequence[str],
    log: Callable[[str], None],
) -> str:
    """Send the digest by e-mail, or write it to ``log`` when no SMTP server is configured.

    Returns where it went. Raises ValueError when a server is configured but no recipient
    (GTM_DIGEST_TO) is, or the URL is malformed.
    """
    if not smtp_url:
        log(f"{digest.subject}\n\n{digest.text}")
        return "written to the log (GTM_SMTP_URL is unset)"
    server = SmtpServer.from_url(smtp_url)
    if not recipients:
        raise ValueError(
            f"GTM_SMTP_URL is set ({server.display}) but GTM_DIGEST_TO is empty: expected "
            "comma-separated addresses, e.g. gtm-eng@example.com,revops@example.com"
        )
    send_by_smtp(digest, server, recipients)
    return f"sent to {len(recipients)} recipient(s) through {server.display}"
