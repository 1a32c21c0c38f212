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

    __slots__ = ("_buffer", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for block in self.blocks(chunk):
            if block[:6] == b"data: " and block.find(b"\n") < 0:
                events.append(SSEEvent(block[6:]))  # the common case: one data line
            elif block:
                event = parse_block(block)
                if event is not None:
                    events.append(event)
        return events

    def complete(self, chunk: bytes) -> bytes:
        """The events this chunk completes, as one piece with LF line ends that ends
        with a blank line (empty if none); the rest waits for the next chunk."""
        buffer = self._take(chunk)
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            self._buffer = buffer
            return b""
        self._buffer = buffer[cut + 2 :]
        return buffer[: cut + 2]

    def between_events(self) -> bool:
        """Nothing is buffered: the next chunk starts a new event."""
        return self._started and not self._buffer

    def blocks(self, chunk: bytes) -> list[bytes]:
        """The events this chunk completes, as raw blocks with LF line ends."""
        blocks = self._take(chunk).split(b"\n\n")
        self._buffer = blocks.pop()  # an event not yet ended by a blank line
        return blocks

    def _take(self, chunk: bytes) -> bytes:
        """What is buffered and the new chunk, in one piece with LF line ends."""
        if not self._started:
            self._started = bool(chunk)
            chunk = chunk.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM may open the stream
        buffer = self._buffer + chunk if self._buffer else chunk
        if buffer.find(b"\r") >= 0:  # `in` would try b"\r" as an integer first: slower
            # A CR at the very end may be the first half of a CRLF: keep it for later.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer[:-1] if keep_cr else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buffer += b"\r"
        return buffer


def parse_block(block: bytes) -> SSEEvent | None:
    data: list[bytes] = []
    name: str | None = None
    for line in block.split(b"\n"):
        if not line or line[0] == 58:  # blank, or a b":" comment
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    return SSEEvent(b"\n".join(data), name) if data else None


def sse_frame(payloads: list[bytes]) -> bytes:
    """Payloads as the bytes of their `data:` events, in one piece."""
    return b"".join([b"data: " + p + b"\n\n" for p in payloads])


def sse_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def sse_error(message: str, type_: str = "upstream_error", code: str | None = None) -> bytes:
    """The event that ends a stream that failed after its first byte (no [DONE] follows)."""
    return sse_data(error_body(message, type_, code))


SSE_DONE = sse_data(DONE)
