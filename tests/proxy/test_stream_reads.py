"""A live stream arrives one event per network read: the relay's cheap path for such a
read, and the idle timeout that costs no new timer per read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.errors import UpstreamError
from gateway.providers.base import Usage
from gateway.providers.openai import OpenAIAdapter
from gateway.providers.openai_stream import OpenAIStream
from gateway.providers.sse import SSEReader, sse_frame
from gateway.proxy.idle_timeout import IdleTimeout

STREAM = (Path(__file__).parents[1] / "fixtures" / "openai" / "stream_text.sse").read_bytes()
EVENTS = [event + b"\n\n" for event in STREAM.split(b"\n\n") if event]
GOOD = EVENTS[1]  # a content chunk in OpenAI's own form


def feed_one_event_per_read(events: list[bytes], include_usage: bool) -> tuple[bytes, OpenAIStream]:
    translator = OpenAIAdapter().chat_stream("m", include_usage)
    return b"".join(translator.feed_bytes(event) for event in events), translator


def feed_event_by_event(data: bytes, include_usage: bool) -> tuple[bytes, OpenAIStream]:
    translator = OpenAIAdapter().chat_stream("m", include_usage)
    payloads = [p for event in SSEReader().feed(data) for p in translator.feed(event)]
    return sse_frame(payloads), translator


@pytest.mark.parametrize("include_usage", [True, False])
def test_one_event_per_read_gives_what_event_by_event_feeding_gives(include_usage: bool) -> None:
    out, translator = feed_one_event_per_read(EVENTS, include_usage)
    expected, reference = feed_event_by_event(STREAM, include_usage)
    assert out == expected
    assert translator.finished
    assert translator.usage == reference.usage is not None


def test_a_stream_in_the_other_usual_form_one_event_per_read() -> None:
    """Providers that leave `usage` out of their chunks (no `"usage":null`)."""
    events = [e.replace(b',"usage":null', b"") for e in EVENTS]
    out, translator = feed_one_event_per_read(events, include_usage=True)
    expected, _ = feed_event_by_event(b"".join(events), include_usage=True)
    assert out == expected and translator.finished


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b'data: {"error": {"message": "overloaded"}}\n\n', "server_error"),
        (b'data: {"id":"x","error":{"message":"overloaded"},"usage":null}\n\n', "server_error"),
        (b"data: {not json}\n\n", "bad_response"),
        (b"data: [1, 2]\n\n", "bad_response"),
    ],
)
def test_a_bad_event_in_a_read_of_its_own_is_still_caught(bad: bytes, reason: str) -> None:
    translator = OpenAIAdapter().chat_stream("m", True)
    assert translator.feed_bytes(GOOD) == GOOD and translator.content_started
    assert translator.feed_bytes(GOOD) == GOOD  # the cheap path
    with pytest.raises(UpstreamError) as caught:
        translator.feed_bytes(bad)
    assert caught.value.reason == reason


def test_reads_that_are_not_one_whole_event_take_the_full_path() -> None:
    translator = OpenAIAdapter().chat_stream("m", False)
    translator.feed_bytes(GOOD)
    half = len(GOOD) // 2
    assert translator.feed_bytes(GOOD[:half]) == b""  # waits for the rest
    assert translator.feed_bytes(GOOD[half:]) == GOOD
    crlf = GOOD.replace(b"\n", b"\r\n")
    assert translator.feed_bytes(crlf) == GOOD  # CR line ends read as LF
    usage = EVENTS[-2]
    assert b'"usage":{' in usage
    assert translator.feed_bytes(usage) == b""  # counts read, chunk not asked for
    assert translator.usage == Usage(input_tokens=25, output_tokens=15)
    assert translator.feed_bytes(b"data: [DONE]\n\n") == b"" and translator.finished
    assert translator.feed_bytes(GOOD) == b""  # nothing after [DONE]


# --- the idle timeout -------------------------------------------------------------


async def test_idle_timeout_expires_after_a_gap_with_no_read() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5), IdleTimeout(0.05, began + 10) as timer:
            await asyncio.Event().wait()
    assert timer.expired  # not the 5 s guard
    assert loop.time() - began >= 0.05 - 0.002


async def test_each_read_starts_a_new_gap() -> None:
    """The timer first fires at the first gap's end, sees a later read and sets itself
    again: waits of 0.05 s never reach the 0.2 s gap, over several gaps in all."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with IdleTimeout(0.2, began + 10) as timer:
        for _ in range(6):
            await asyncio.sleep(0.05)
            timer.waiting()
    assert not timer.expired
    assert loop.time() - began >= 0.3


async def test_a_gap_counts_from_the_last_read() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5), IdleTimeout(0.2, began + 10) as timer:
            await asyncio.sleep(0.05)
            timer.waiting()
            await asyncio.Event().wait()
    assert timer.expired
    assert loop.time() - began >= 0.25 - 0.002


async def test_while_not_waiting_only_the_total_time_applies() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with IdleTimeout(0.02, began + 10) as timer:
        timer.not_waiting()  # writing to a slow client
        await asyncio.sleep(0.1)  # five gaps' worth
    assert not timer.expired
    began = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5), IdleTimeout(10, began + 0.05) as timer:
            timer.not_waiting()
            await asyncio.Event().wait()
    assert timer.expired
    assert loop.time() - began >= 0.05 - 0.002


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    started = asyncio.Event()

    async def relay() -> None:
        async with IdleTimeout(10, asyncio.get_running_loop().time() + 10):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(relay())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
