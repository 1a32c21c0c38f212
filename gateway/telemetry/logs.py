"""Log output, as JSON lines on stdout: the access log (one line per request, written
in batches by a thread so the event loop never formats through `logging` nor blocks
on stdout) and the application's own log records."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import queue
import sys
import threading
from typing import BinaryIO, TextIO

import orjson
from aiohttp.http_exceptions import HttpProcessingError


class AccessLogWriter:
    """`write()` costs a list append on the request path; `run()` hands batches to a
    writer thread every `interval_s` (or sooner when many lines wait)."""

    def __init__(
        self, stream: BinaryIO | None = None, interval_s: float = 0.1, batch_lines: int = 512
    ) -> None:
        self._stream = stream
        self._interval_s = interval_s
        self._batch_lines = batch_lines
        self._lines: list[bytes] = []
        self._batches: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        if len(self._lines) >= self._batch_lines:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._batches.put(b"".join(self._lines))
            self._lines = []

    def start(self) -> None:
        stream = self._stream or sys.stdout.buffer
        self._thread = threading.Thread(
            target=self._drain, args=(stream,), name="access-log", daemon=True
        )
        self._thread.start()

    async def run(self) -> None:
        """Until cancelled: flush what waits, every `interval_s`."""
        while True:
            await asyncio.sleep(self._interval_s)
            self.flush()

    def stop(self) -> None:
        self.flush()
        self._batches.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _drain(self, stream: BinaryIO) -> None:
        while (batch := self._batches.get()) is not None:
            with contextlib.suppress(OSError, ValueError):  # stdout closed: nothing to do
                stream.write(batch)
                stream.flush()


class JsonLineHandler(logging.Handler):
    """Application log records as JSON lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stdout

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {
                "ts": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                entry["exception"] = self.format(record).split("\n", 1)[-1]
            self.stream.write(orjson.dumps(entry).decode() + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)


class ClientMistakes(logging.Filter):
    """aiohttp logs a request it cannot parse (a client's malformed HTTP) as an error with
    a traceback; the client's mistake is worth one line at debug level, no more."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            first = str(error.message).split("\n", 1)[0].rstrip(": ")  # no caret diagram
            record.msg, record.args = "malformed HTTP request: %s", (first,)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_client_mistakes() -> None:
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientMistakes) for f in server.filters):
        server.addFilter(ClientMistakes())


def setup_logging(level: str) -> logging.handlers.QueueListener:
    """Application logs as JSON lines on stdout, written by a thread so the event loop
    never blocks on I/O."""
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, JsonLineHandler(sys.stdout))
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True
    listener.start()
    return listener
