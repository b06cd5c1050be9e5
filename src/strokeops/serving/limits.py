"""Limits on what a request to ``/v1/`` may send, checked before anything reads the body.

- A body larger than ``max_body_bytes`` gets 413 naming the limit: from its ``Content-Length``
  up front, or, for a chunked body, as soon as the bytes received pass the limit (so a 50 MB
  field is never parsed).
- A body that is not declared as JSON (``Content-Type: application/json`` or ``…+json``) gets
  415, also when the header is missing (FastAPI would hand the raw bytes to validation and
  answer a puzzling 422 "Input should be a valid dictionary"), and so does a body declared in
  another charset than UTF-8 (JSON's only one) or compressed (``Content-Encoding``), which
  would otherwise be parsed as if it were plain UTF-8.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strokeops.serving.auth import PROTECTED_PREFIX
from strokeops.serving.errors import MAX_ECHO_CHARS
from strokeops.serving.headers import header_value, header_values

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


UTF8_NAMES = frozenset({b"utf-8", b"utf8"})


def is_json_media_type(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


def _echo(value: bytes) -> str:
    """A header value as an error message may quote it: cut, so a 5 MB header is not sent
    back as a 5 MB answer."""
    text = value[: MAX_ECHO_CHARS + 1].decode("latin-1")
    return repr(text) if len(text) <= MAX_ECHO_CHARS else f"{text[:MAX_ECHO_CHARS]!r}…"


def unreadable_body(content_types: list[bytes], content_encodings: list[bytes]) -> str | None:
    """Why a body sent with these headers (each header's values, in order) cannot be read as
    JSON, or None if it can."""
    if len(content_types) > 1:
        return "send one Content-Type header, application/json; several were sent"
    content_type = content_types[0] if content_types else None
    if content_type is None or not is_json_media_type(content_type):
        sent = "none was sent" if content_type is None else _echo(content_type)
        return f"Content-Type must be application/json; {sent}"
    for parameter in content_type.split(b";")[1:]:
        name, _, value = parameter.partition(b"=")
        charset = value.strip().strip(b'"').lower()
        if name.strip().lower() == b"charset" and charset not in UTF8_NAMES:
            return f"JSON bodies must be UTF-8; charset {_echo(charset)} was declared"
    tokens = [token.strip().lower() for value in content_encodings for token in value.split(b",")]
    if any(token != b"identity" for token in tokens):
        sent = _echo(b", ".join(content_encodings))
        return f"Content-Encoding {sent} is not supported; send the body uncompressed"
    return None


async def send_error(send: Send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self, size: int) -> str:
        return (
            f"request body too large: {size} bytes; the limit is {self.max_body_bytes} bytes "
            "(STROKEOPS_MAX_BODY_BYTES)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in METHODS_WITH_BODY
            or not scope["path"].startswith(PROTECTED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        length = header_value(scope, b"content-length")
        chunked = length is None and header_value(scope, b"transfer-encoding") is not None
        if not chunked and (length is None or length == b"0"):
            await self.app(scope, receive, send)  # no body (e.g. POST /v1/admin/reload)
            return
        problem = unreadable_body(
            header_values(scope, b"content-type"), header_values(scope, b"content-encoding")
        )
        if problem is not None:
            await send_error(send, 415, problem)
            return
        if length is not None:
            if length.isdigit() and int(length) > self.max_body_bytes:
                await send_error(send, 413, self._too_large(int(length)))
                return
            await self.app(scope, receive, send)  # the server holds the body to its length
            return
        messages = await self._read_chunked(receive)
        if isinstance(messages, int):
            await send_error(send, 413, self._too_large(messages))
            return
        await self.app(scope, replay(messages, receive), send)

    async def _read_chunked(self, receive: Receive) -> list[Message] | int:
        """The body's messages, or the byte count at which it passed the limit."""
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client went away: let the app see it
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                return received
            if not message.get("more_body", False):
                return messages


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered messages first, then the real ones."""
    pending = list(messages)

    async def replaying_receive() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replaying_receive
