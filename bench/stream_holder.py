"""Holds N streaming chat completions open at once, for a memory measurement.

Opens --streams streams at --ramp per second against a slow-chunk upstream, waits
until every one has delivered its first chunk, prints `OPEN {...}` (the parent then
samples the proxy's memory), keeps reading for --hold seconds, then drops them all
and prints `HOLDJSON {...}`.

    python bench/stream_holder.py --url http://127.0.0.1:18100/v1/chat/completions \
        --model bench-model-hold --streams 1000 --hold 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

# A long user message: the mock provider's answer quotes it word by word, so with its
# chunk delay each stream lasts far longer than the measurement.
QUESTION = " ".join(["please", "explain", "streaming", "relays", "slowly"] * 8)


async def run(a: argparse.Namespace) -> dict[str, Any]:
    body = json.dumps(
        {
            "model": a.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": QUESTION}],
        }
    ).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + a.api_key}
    opened = 0
    errors: dict[str, int] = {}
    all_open = asyncio.Event()
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            nonlocal opened
            try:
                async with session.post(a.url, data=body, headers=headers) as r:
                    if r.status != 200:
                        error(f"HTTP {r.status}")
                        return
                    first = await r.content.readany()
                    if not first:
                        error("empty stream")
                        return
                    opened += 1
                    if opened == a.streams:
                        all_open.set()
                    while not stop.is_set():
                        if not await r.content.readany():
                            error("stream ended early")
                            return
            except (aiohttp.ClientError, OSError) as exc:
                error(type(exc).__name__)

        t0 = time.perf_counter()
        tasks = []
        for i in range(a.streams):
            tasks.append(asyncio.create_task(one()))
            if a.ramp and i % 50 == 49:
                await asyncio.sleep(50 / a.ramp)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_open.wait(), timeout=a.open_timeout)
        open_s = time.perf_counter() - t0
        print("OPEN " + json.dumps({"opened": opened, "open_s": round(open_s, 2)}), flush=True)
        await asyncio.sleep(a.hold)
        still_open = sum(1 for t in tasks if not t.done())
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "streams": a.streams,
        "opened": opened,
        "open_s": round(open_s, 2),
        "still_open_at_end": still_open,
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--api-key", default="sk-bench")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--ramp", type=float, default=500.0, help="new streams per second")
    ap.add_argument("--hold", type=float, default=3.0, help="seconds to hold after all open")
    ap.add_argument("--open-timeout", type=float, default=30.0)
    a = ap.parse_args()
    try:
        import uvloop

        result = uvloop.run(run(a))
    except ImportError:
        result = asyncio.run(run(a))
    print("HOLDJSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
