"""Step logs: on stderr only, secrets redacted whatever logged them."""

from __future__ import annotations

import logging

import pytest

from aiship.support.logs import REDACTED, configure, redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://a.blob.core.windows.net/m?sv=2024&sig=AbC%2Fd&se=1", "AbC%2Fd"),
        ("DefaultEndpointsProtocol=https;AccountKey=Zm9vYmFy==;EndpointSuffix=x", "Zm9vYmFy=="),
        ("BlobEndpoint=x;SharedAccessSignature=sv=1&sig=Q", "sv=1&sig=Q"),
        ('{"password": "hunter2", "user": "ci"}', "hunter2"),
        ("Authorization: Bearer eyJ0eXAi.payload.sig", "eyJ0eXAi.payload.sig"),
        ("Authorization: Basic dXNlcjpwdw==", "dXNlcjpwdw=="),
        ("refresh_token=rt-123&grant_type=refresh_token", "rt-123"),
    ],
)
def test_secret_looking_fragments_are_redacted(text, secret):
    redacted = redact(text)

    assert secret not in redacted and REDACTED in redacted


def test_named_secrets_are_redacted_anywhere():
    assert redact("token tk-1 and again tk-1", ("tk-1", "")) == "token *** and again ***"


def test_configure_writes_redacted_lines_to_stderr_only(capsys):
    configure()
    logging.getLogger("steps.test").info("using AccountKey=Zm9vYmFy== now")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"using AccountKey={REDACTED} now\n"


@pytest.mark.parametrize(("verbose", "level"), [(False, logging.WARNING), (True, logging.DEBUG)])
def test_the_sdks_speak_only_when_asked(verbose, level):
    configure(verbose)

    assert logging.getLogger("azure").level == level
    assert logging.getLogger("botocore").level == level
