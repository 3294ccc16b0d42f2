"""The signature functions against vectors computed independently (with openssl)."""

from __future__ import annotations

from gtm_orchestration.receiver.signatures import (
    gtm_signature,
    hubspot_signed_uri,
    hubspot_v3_signature,
    verify_gtm_signature,
    verify_hubspot_v3,
)

# printf '%s' 'POSThttps://hooks.example.com/webhooks/hubspot?portal=62515&tag=a:b[{"eventId":1,
#   "subscriptionType":"contact.creation","objectId":123}]1700000000000'
#   | openssl dgst -sha256 -hmac 'yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy' -binary | base64
CLIENT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URI = "https://hooks.example.com/webhooks/hubspot?portal=62515&tag=a:b"
BODY = b'[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]'
TIMESTAMP = "1700000000000"
V3_SIGNATURE = "27OHuh25OhJFudQb4Qg51mTguNMLTa7HHvsL08Ehxn4="
SIGNED_AT = 1700000000.0  # epoch seconds of TIMESTAMP

# printf '%s' '{"event_id":"f-1","email":"ada@example.com"}'
#   | openssl dgst -sha256 -hmac 'sandbox-webhook-secret'
WEBHOOK_SECRET = "sandbox-webhook-secret"
FORM_BODY = b'{"event_id":"f-1","email":"ada@example.com"}'
GTM_HEX = "824265a5e9c2cf9d5a4e45b5581f5322e311717950999bdb7c0e116d5a6670b6"


def test_hubspot_v3_signature_matches_the_known_vector() -> None:
    assert hubspot_v3_signature(CLIENT_SECRET, "POST", URI, BODY, TIMESTAMP) == V3_SIGNATURE


def test_hubspot_signs_the_uri_with_its_listed_escapes_decoded() -> None:
    encoded = "https://hooks.example.com/webhooks/hubspot?portal=62515&tag=a%3Ab"
    assert hubspot_v3_signature(CLIENT_SECRET, "POST", encoded, BODY, TIMESTAMP) == V3_SIGNATURE
    assert hubspot_signed_uri("/p?a=%3a%2F%3F%40%21%24%27%28%29%2A%2C%3B") == "/p?a=:/?@!$'()*,;"
    # Escapes outside HubSpot's list stay as sent, and decoding happens once.
    assert hubspot_signed_uri("/p?q=a%20b%26c%253A") == "/p?q=a%20b%26c%253A"


def test_verify_hubspot_v3_accepts_the_vector_within_five_minutes() -> None:
    def verify(signature: str = V3_SIGNATURE, body: bytes = BODY, now: float = SIGNED_AT) -> bool:
        return verify_hubspot_v3(CLIENT_SECRET, "POST", URI, body, TIMESTAMP, signature, now=now)

    assert verify()
    assert verify(now=SIGNED_AT + 299) and verify(now=SIGNED_AT - 299)
    assert not verify(now=SIGNED_AT + 301), "older than 5 minutes"
    assert not verify(now=SIGNED_AT - 301), "more than 5 minutes in the future"
    assert not verify(body=BODY.replace(b"123", b"124"))
    assert not verify(signature="37" + V3_SIGNATURE[2:])
    assert not verify(signature="")
    assert not verify_hubspot_v3("other", "POST", URI, BODY, TIMESTAMP, V3_SIGNATURE, now=SIGNED_AT)
    for timestamp in (None, "", "1700000000000.0", "-1", "soon"):
        assert not verify_hubspot_v3(
            CLIENT_SECRET, "POST", URI, BODY, timestamp, V3_SIGNATURE, now=SIGNED_AT
        )


def test_gtm_signature_matches_the_known_vector() -> None:
    assert gtm_signature(WEBHOOK_SECRET, FORM_BODY) == f"sha256={GTM_HEX}"
    assert verify_gtm_signature(WEBHOOK_SECRET, FORM_BODY, f"sha256={GTM_HEX}")
    assert verify_gtm_signature(WEBHOOK_SECRET, FORM_BODY, f"sha256={GTM_HEX.upper()}")
    assert not verify_gtm_signature(WEBHOOK_SECRET, FORM_BODY + b" ", f"sha256={GTM_HEX}")
    assert not verify_gtm_signature(WEBHOOK_SECRET, FORM_BODY, f"sha256={GTM_HEX[:-1]}7")
    assert not verify_gtm_signature(WEBHOOK_SECRET, FORM_BODY, GTM_HEX), "the prefix is required"
    assert not verify_gtm_signature(WEBHOOK_SECRET, FORM_BODY, None)
    assert not verify_gtm_signature(WEBHOOK_SECRET, FORM_BODY, "sha256=é")
