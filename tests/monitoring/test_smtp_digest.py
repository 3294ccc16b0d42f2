"""GTM_SMTP_URL: parsed with its defaults, and its password never shown."""

import pytest

from gtm_orchestration.lib.smtp_digest import Digest, SmtpServer, deliver_digest


def test_an_smtp_url_gives_server_port_sender_and_credentials() -> None:
    server = SmtpServer.from_url("smtps://alerts%40acme.io:p%40ss@mail.acme.io?from=gtm@acme.io")
    assert (server.scheme, server.host, server.port) == ("smtps", "mail.acme.io", 465)
    assert (server.username, server.password, server.sender) == (
        "alerts@acme.io",
        "p@ss",
        "gtm@acme.io",
    )
    assert server.display == "smtps://mail.acme.io:465"
    assert "p@ss" not in repr(server)
    assert SmtpServer.from_url("smtp://relay").port == 25


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:secret@mail.acme.io", "expected smtp://[user:password@]host[:port]"),
        ("smtp://user:secret@", "expected a host"),
        ("smtp://user:secret@mail.acme.io:port", "expected a port number"),
    ],
)
def test_a_malformed_smtp_url_is_refused_without_showing_its_password(
    url: str, expected: str
) -> None:
    with pytest.raises(ValueError) as error:
        SmtpServer.from_url(url)
    assert expected in str(error.value)
    assert "secret" not in str(error.value)


def test_a_server_without_recipients_is_refused_and_no_server_means_the_log() -> None:
    digest = Digest("subject", "body")
    logged: list[str] = []
    assert deliver_digest(digest, None, (), logged.append).startswith("written to the log")
    assert logged == ["subject\n\nbody"]
    with pytest.raises(ValueError, match="GTM_DIGEST_TO is empty"):
        deliver_digest(digest, "smtp://user:secret@relay", (), logged.append)
