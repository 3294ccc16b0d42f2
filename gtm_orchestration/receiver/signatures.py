"""Webhook signatures: HubSpot's v3 request signature and the generic ``X-GTM-Signature``.

Pure functions, used by the receiver to verify and by traffic generators and tests to sign.
Every comparison is constant-time so a forger learns nothing from response timings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

HUBSPOT_SIGNATURE_WINDOW_S = 300.0
GTM_SIGNATURE_PREFIX = "sha256="

# HubSpot signs the request URI with exactly these escapes decoded and every other one kept,
# so a receiver that decodes more (or less) computes a different string.
_HUBSPOT_DECODED_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)
_EPOCH_MILLIS = re.compile(r"[0-9]{1,16}")


def hubspot_signed_uri(uri: str) -> str:
    """The request URI as HubSpot signs it: ``%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C
    %3B`` decoded (in one pass, so ``%253A`` stays ``%3A``), everything else as sent."""
    return _HUBSPOT_DECODED_ESCAPES.sub(lambda escape: chr(int(escape.group(1), 16)), uri)


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3`` for a request: base64 of HMAC-SHA256 keyed by the app's client
    secret over ``method + uri + body + timestamp`` (UTF-8, the URI as HubSpot signs it)."""
    message = (method + hubspot_signed_uri(uri)).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def hubspot_timestamp_is_fresh(
    timestamp: str | None,
    *,
    now: float | None = None,
    window_s: float = HUBSPOT_SIGNATURE_WINDOW_S,
) -> bool:
    """Whether ``X-HubSpot-Request-Timestamp`` (epoch milliseconds) lies within ``window_s``
    of ``now`` (epoch seconds, default the clock), in the past or the future."""
    if timestamp is None or not _EPOCH_MILLIS.fullmatch(timestamp):
        return False
    now_ms = (time.time() if now is None else now) * 1000
    return abs(now_ms - int(timestamp)) <= window_s * 1000


def verify_hubspot_v3(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
    window_s: float = HUBSPOT_SIGNATURE_WINDOW_S,
) -> bool:
    """True when ``signature`` is the v3 signature of the request and its timestamp is fresh."""
    if not signature or timestamp is None:
        return False
    if not hubspot_timestamp_is_fresh(timestamp, now=now, window_s=window_s):
        return False
    expected = hubspot_v3_signature(secret, method, uri, body, timestamp)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def gtm_signature(secret: str, body: bytes) -> str:
    """``X-GTM-Signature`` for a body: ``sha256=`` and the hex HMAC-SHA256 of the raw bytes."""
    return GTM_SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_gtm_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is ``gtm_signature(secret, body)`` (hex digits in any case)."""
    if not signature:
        return False
    expected = gtm_signature(secret, body)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())
