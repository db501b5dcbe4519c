"""Sending one message: email over SMTP (:mod:`smtplib`) and a JSON webhook (HTTP POST).

Both raise :class:`SendError` with a message safe to store and print: no password, no signing
secret, and webhook URLs masked (a Slack webhook URL is itself a credential, and
:mod:`requests` puts the URL in its exceptions).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import requests
from requests.utils import requote_uri

from qbo_pipelines.notify.channels import SmtpSettings, cleartext_login, mask_url
from qbo_pipelines.notify.messages import Message
from qbo_pipelines.qbo.secret import Secret

SIGNATURE_HEADER: Final = "X-QBO-Pipelines-Signature"
TIMESTAMP_HEADER: Final = "X-QBO-Pipelines-Timestamp"
USER_AGENT: Final = "qbo-pipelines-notify/1"
_ERROR_CHARS: Final = 500


class SendError(Exception):
    """A message could not be sent; ``str()`` is safe to store and show."""


def _safe(text: str, *secrets: str | None) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "**********")
    return text[:_ERROR_CHARS]


DEADLINE_FACTOR: Final = 3
"""A send's whole deadline, in its timeouts: a timeout bounds each wait for bytes, so an
endpoint answering a byte at a time would hold the delivery (and every channel behind its
lock) for ever without a bound on the whole send."""

T = TypeVar("T")


def _within(seconds: float, what: str, send: Callable[[], T]) -> T:
    """``send()`` in a thread of its own, given up after ``seconds`` in all (the thread is left
    to end on its own timeouts; nothing waits for it)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = send()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="notify-send", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise SendError(f"{what}: no complete answer within {seconds:.0f} s (given up)")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()\[\]]{1,120})")


def _reason(exc: requests.RequestException) -> str:
    """Why a request failed, without the URL :mod:`requests` writes into its messages (in a
    re-encoded form no masking of the URL as given would catch)."""
    if isinstance(exc, requests.Timeout):
        return f"{type(exc).__name__}: no answer in time"
    found = _ERRNO.search(str(exc))
    return f"{type(exc).__name__}: {found.group(1).strip()}" if found else type(exc).__name__


def send_email(settings: SmtpSettings, recipients: list[str], message: Message) -> None:
    """Send ``message`` as a plain-text email to ``recipients``.

    Raises:
        SendError: connection, TLS, authentication or a refused recipient.
    """
    email = EmailMessage()
    try:
        # one line: a line break of any kind (CR, U+2028 ... from a QBO company's name) in
        # a header is refused, or worse, starts a header of its own
        email["Subject"] = " ".join(message.subject.splitlines())
        email["From"] = settings.from_address
        email["To"] = ", ".join(recipients)
    except ValueError as exc:
        raise SendError(f"SMTP: the message's headers are not valid ({exc})") from None
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(domain="qbo-pipelines")
    email.set_content(message.text)
    refused = cleartext_login(settings.host, settings.security, settings.username)
    if refused:  # before connecting: nothing is sent
        raise SendError(refused)
    password = settings.password.reveal() if settings.password else None
    where = f"{settings.host}:{settings.port} ({settings.security})"
    _within(
        settings.timeout * DEADLINE_FACTOR,
        f"SMTP {where}",
        lambda: _smtp_send(settings, email, password),
    )


def _smtp_send(settings: SmtpSettings, email: EmailMessage, password: str | None) -> None:
    try:
        smtp: smtplib.SMTP
        if settings.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with smtp:
            smtp.ehlo()
            if settings.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.username:
                if password is None:
                    raise SendError(
                        f"SMTP user {settings.username} has no password (store one with the "
                        "channel or set QBO_PIPELINES_SMTP_PASSWORD)"
                    )
                smtp.login(settings.username, password)
            refused = smtp.send_message(email)
        if refused:
            raise SendError(f"SMTP server refused {', '.join(sorted(refused))}")
    except SendError:
        raise
    except (OSError, smtplib.SMTPException) as exc:
        where = f"{settings.host}:{settings.port} ({settings.security})"
        raise SendError(_safe(f"SMTP {where}: {type(exc).__name__}: {exc}", password)) from None


def sign(secret: Secret, timestamp: str, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``: what a receiver recomputes to check a
    webhook came from us (and is recent: compare the timestamp header with its clock)."""
    mac = hmac.new(
        secret.reveal().encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256
    )
    return f"v1={mac.hexdigest()}"


def send_webhook(
    url: str, payload: dict[str, Any], secret: Secret | None, *, timeout: float = 10.0
) -> None:
    """POST ``payload`` as JSON; any 2xx answer is success.

    With a secret, the headers carry ``X-QBO-Pipelines-Timestamp`` (Unix seconds) and
    ``X-QBO-Pipelines-Signature`` (:func:`sign` over the exact body bytes).

    Raises:
        SendError: no connection, a timeout or a non-2xx answer (URL masked).
    """
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    if secret:
        timestamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    shown = mask_url(url)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    paths = (path, requote_uri(path)) if len(path) > 1 else ()
    hidden = (url, requote_uri(url), *paths, secret.reveal() if secret else None)

    def post() -> tuple[int, str]:
        # streamed: the status is what counts, and at most a little of an error's body is read
        with requests.post(
            url, data=body, headers=headers, timeout=timeout, stream=True
        ) as response:
            ok = 200 <= response.status_code < 300
            head = b"" if ok else response.raw.read(200, decode_content=True) or b""
            return response.status_code, head.decode("utf-8", "replace")

    try:
        status, text = _within(timeout * DEADLINE_FACTOR, f"webhook {shown}", post)
    except requests.RequestException as exc:
        raise SendError(_safe(f"webhook {shown}: {_reason(exc)}", *hidden)) from None
    except (OSError, ValueError) as exc:  # urllib3's own errors while reading the answer
        raise SendError(f"webhook {shown}: {type(exc).__name__}") from None
    if not 200 <= status < 300:
        answer = " ".join(text.split())[:200]
        raise SendError(_safe(f"webhook {shown}: HTTP {status} {answer}", *hidden))


__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SendError",
    "send_email",
    "send_webhook",
    "sign",
]
