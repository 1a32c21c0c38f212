"""Server-sent events: an incremental reader for provider streams and the bytes we
write to clients."""

from __future__ import annotations

from gateway.errors import error_body
from gateway.providers.base import SSEEvent

DONE = b"[DONE]"


class SSEReader:
    """Splits a byte stream into events, whatever the chunk boundaries.

    Follows the SSE spec: CR, LF or CRLF line ends; `data:` lines joined by LF; lines
    starting with `:` are comments; `id` and `retry` are ignored; an event not ended by
    a blank line when the stream stops is incomplete and never dispatched.
    """

    __slots__ = ("_buffer", "_data", "_event", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event: str | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not self._started:
            self._started = bool(chunk)
            chunk = chunk.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM may open the stream
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: keep it for later.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer[:-1] if keep_cr else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buffer += b"\r"
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()  # the unfinished last line
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(SSEEvent(b"\n".join(self._data), self._event))
                self._data = []
                self._event = None
                continue
            if line[0] == 58:  # b":" comment
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events


def sse_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def sse_error(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    """The event that ends a stream that failed after its first byte (no [DONE] follows)."""
    return sse_data(error_body(message, type_, code))


SSE_DONE = sse_data(DONE)
