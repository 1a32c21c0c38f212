"""An OpenAI chunk stream read on its way to the client: usage, errors, the first token
and the end are found, and the chunks themselves go on as they came."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import UpstreamError
from gateway.providers.base import SSEEvent, Usage
from gateway.providers.sse import DONE, SSEReader, parse_block

_NEXT = b'}\n\ndata: {"'  # between two events in the usual form
_NULL_USAGE_END = b'"usage":null}\n\n'
_NULL_USAGE_LEN = len(_NULL_USAGE_END)
_NEXT_NO_USAGE = b'"usage":null' + _NEXT
_DONE_EVENT = b"data: [DONE]\n\n"


def usage_from_openai(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    try:
        return Usage(
            input_tokens=int(raw.get("prompt_tokens") or 0),
            output_tokens=int(raw.get("completion_tokens") or 0),
            cached_input_tokens=int(cached or 0),
        )
    except (TypeError, ValueError):
        raise UpstreamError("bad_response", "provider usage is not a number") from None


def loads(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("bad_response", f"provider sent {what} that is not JSON") from None


class OpenAIStream:
    """OpenAI chunks pass through as they came; usage is read from the last one."""

    __slots__ = ("_passing", "_reader", "content_started", "finished", "include_usage", "usage")

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.finished = False
        self.content_started = False
        self._reader = SSEReader()
        # After the first token, with no event half read: a read that is one usual
        # event may go on as it came (set by the full path, which any other read takes).
        self._passing = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data == DONE:
            self.finished = True
            return []
        return [data] if self._passes(loads(data, "a stream chunk")) else []

    def feed_bytes(self, chunk: bytes) -> bytes:
        """Until the first token every event is parsed. After it, a run of events in
        the usual form (each one `data: {"…}` line, none with usage counts or an error
        in it) goes on as it came, checked by a few scans of the bytes instead of being
        parsed: building objects from every chunk's JSON was most of a stream's cost.
        The usage chunk, an error, [DONE] and anything unusual are parsed as before."""
        if self._passing and _one_usual_event(chunk):
            return chunk  # a live stream's usual read: one whole event
        text = self._reader.complete(chunk)
        out: list[bytes] = []
        pos, end = 0, len(text)
        while pos < end and not self.content_started and not self.finished:
            pos = self._parse_next(text, pos, out)
        if pos < end and not self.finished:
            # [DONE] last (the usual end): no parse needed to see it.
            done = text.endswith(_DONE_EVENT) and (
                end - len(_DONE_EVENT) == pos or text.endswith(b"\n\n", 0, end - len(_DONE_EVENT))
            )
            if done:
                end -= len(_DONE_EVENT)
            stop = _usual_run_end(text, pos, end)
            if stop > pos:
                out.append(text[pos:stop])
                pos = stop
            while pos < end and not self.finished:
                pos = self._parse_next(text, pos, out)
            self.finished = self.finished or done
        self._passing = self.content_started and not self.finished and self._reader.between_events()
        return b"".join(out)

    def _parse_next(self, text: bytes, pos: int, out: list[bytes]) -> int:
        """Parse the event at `pos`; returns where the next one starts."""
        cut = text.find(b"\n\n", pos)
        if cut < 0:
            return len(text)  # only the blank line that ends the piece is left
        block = text[pos:cut]
        if block[:6] == b"data: " and block.find(b"\n") < 0:  # the usual single data line
            data = block[6:]
            if data == DONE:
                self.finished = True
            elif self._passes(loads(data, "a stream chunk")):
                out.append(text[pos : cut + 2])
        else:
            event = parse_block(block)
            if event is not None:
                out += [b"data: " + payload + b"\n\n" for payload in self.feed(event)]
        return cut + 2

    def _passes(self, chunk: Any) -> bool:
        """Checks one parsed chunk and reads its usage; False: not for the client."""
        if not isinstance(chunk, dict):
            raise UpstreamError(
                "bad_response", "provider sent a stream chunk that is not an object"
            )
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            raise UpstreamError(
                "server_error", f"provider stream error: {err.get('message', '')}"[:300]
            )
        choices = chunk.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise UpstreamError("bad_response", "provider stream chunk has bad choices")
        if not self.content_started and choices:
            self.content_started = self._starts(choices[0])
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_from_openai(usage)
            if not choices and not self.include_usage:
                return False  # the usage chunk we asked for on the client's behalf
        return True

    def _starts(self, first: Any) -> bool:
        """Whether the first choice of a chunk carries the answer's first token."""
        delta = first.get("delta") if isinstance(first, dict) else None
        if not isinstance(delta, dict):
            raise UpstreamError("bad_response", "provider stream chunk has no delta")
        return bool(delta.get("content") or delta.get("tool_calls") or first.get("finish_reason"))


def _one_usual_event(chunk: bytes) -> bool:
    """The read is one whole event in the usual form, with no usage counts or error in
    it: the same checks as for a run, at the cost of a few memchr-fast scans. (`find`,
    not `in`: `bytes in bytes` first tries the needle as an integer, and the error it
    formats and drops costs more than the scan.)"""
    return (
        chunk[:8] == b'data: {"'  # slices: cheaper than startswith's argument parsing
        and chunk[-3:] == b"}\n\n"
        and chunk.find(b"\n") == len(chunk) - 2
        and chunk.find(b"\r") < 0
        and chunk.find(b'"error"') < 0
        and (chunk[-_NULL_USAGE_LEN:] == _NULL_USAGE_END or chunk.find(b'"usage"') < 0)
    )


def _usual_run_end(text: bytes, pos: int, end: int) -> int:
    """Where the run of usual events from `pos` ends: `end`, or the start of the last
    event when it carries usage counts (parsed on its own); `pos` when anything in the
    run is unusual. `text[pos:end]` holds whole events."""
    stop = end
    before = text.rfind(b"\n\n", pos, stop - 2)
    last = pos if before < 0 else before + 2  # where the last event starts
    if not text.endswith(_NULL_USAGE_END, last, stop) and text.find(b'"usage"', last, stop) >= 0:
        stop = last
    if stop <= pos:
        return pos
    events = text.count(b"\n\n", pos, stop)
    if (
        not text.startswith(b'data: {"', pos)
        or not text.endswith(b"}\n\n", pos, stop)
        or text.find(b'"error"', pos, stop) >= 0
    ):
        return pos
    # Every event boundary lies between `}` and `data: {"`. (An event may still hold
    # more than one `data:` line; it goes on as it came, which is what the SSE spec lets
    # a client read, and the scans for usage and errors do not depend on lines.)
    if text.count(_NEXT_NO_USAGE, pos, stop) == events - 1 and text.endswith(
        _NULL_USAGE_END, pos, stop
    ):
        return stop  # OpenAI's own form: every chunk says `"usage":null` last
    if text.count(_NEXT, pos, stop) == events - 1 and text.find(b'"usage"', pos, stop) < 0:
        return stop
    return pos
