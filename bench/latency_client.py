"""Open-loop, fixed-rate latency client.

Sends one POST every 1/--rate seconds for --warmup + --duration seconds, each on its
own task, whatever the server does: a slow answer never delays the next send, and
latency runs from the request's *scheduled* time (no coordinated omission). Requests
still unanswered --grace seconds after the last send are cancelled and counted.
Prints one line `LATJSON {...}` (milliseconds).

    python bench/latency_client.py --url http://127.0.0.1:18182/v1/chat/completions \
        --model bench-model-slow --rate 200 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

BODY: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "In one sentence: what does an LLM gateway add?"},
    ],
    "max_tokens": 64,
    "temperature": 0,
}


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), -(-len(sorted_values) * p // 100)))
    return sorted_values[int(rank) - 1]


async def run(a: argparse.Namespace) -> dict[str, Any]:
    body = json.dumps({"model": a.model, **BODY}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + a.api_key}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    connector = aiohttp.TCPConnector(limit=a.max_conns, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(scheduled: float, recorded: bool) -> None:
            nonlocal errors
            try:
                async with session.post(a.url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, OSError):
                errors += recorded
                return
            if not recorded:
                return
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                latencies.append(time.perf_counter() - scheduled)
            else:
                errors += 1

        n_warm, n = int(a.warmup * a.rate), int(a.duration * a.rate)
        interval = 1.0 / a.rate
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter() + 0.05
        max_lag = 0.0
        for i in range(n_warm + n):
            scheduled = start + i * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                max_lag = max(max_lag, -delay)
            tasks.append(asyncio.create_task(one(scheduled, i >= n_warm)))
        _, pending = await asyncio.wait(tasks, timeout=a.grace) if tasks else (set(), set())
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
    unfinished = sum(1 for i, t in enumerate(tasks) if i >= n_warm and t in pending)
    latencies.sort()

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return {
        "rate": a.rate,
        "sent": n,
        "ok": len(latencies),
        "errors": errors,
        "unfinished": unfinished,
        "statuses": statuses,
        "max_send_lag_ms": ms(max_lag),
        "p50_ms": ms(percentile(latencies, 50)),
        "p90_ms": ms(percentile(latencies, 90)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1] if latencies else None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--api-key", default="sk-bench")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds sent but not recorded")
    ap.add_argument("--grace", type=float, default=10.0)
    ap.add_argument("--max-conns", type=int, default=1000)
    a = ap.parse_args()
    try:
        import uvloop

        result = uvloop.run(run(a))
    except ImportError:
        result = asyncio.run(run(a))
    print("LATJSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
