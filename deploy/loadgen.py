"""Steady demo traffic for `docker compose up`, so the Grafana dashboard has something
to show: a mix of plain, streaming, failover, Anthropic, unpriced, embedding and
prompt requests from two client keys, plus a canary version of `support-reply` at 10%.

    python deploy/loadgen.py --url http://127.0.0.1:8080 --rate 5
    python deploy/loadgen.py --url ... --count 40      # send 40 requests, print a summary

Only the standard library and aiohttp (both in the gateway's image). The last line
printed is a JSON summary: requests sent and the answers' statuses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

KEYS = ("sk-demo-support", "sk-demo-search")  # see deploy/gateway.compose.toml
PROMPT = "support-reply"
QUESTIONS = (
    "How do I reset my password?",
    "Where is my invoice?",
    "Can I change the delivery address?",
    "Why was my card declined?",
    "How long does shipping take?",
)
PRODUCTS = ("Acme Cloud", "Acme Router", "Acme Desk")

# (weight, route, stream): what a request asks for.
MIX: tuple[tuple[int, str, bool], ...] = (
    (6, "chat", False),
    (4, "chat", True),
    (3, "fast", False),
    (2, "claude", True),
    (2, "slow", True),
    (1, "local", False),
    (1, "embed", False),
    (5, "prompt:" + PROMPT, False),
    (2, "prompt:" + PROMPT, True),
)


def pick_request(rng: random.Random) -> tuple[str, dict[str, Any]]:
    _, route, stream = rng.choices(MIX, weights=[m[0] for m in MIX])[0]
    question = rng.choice(QUESTIONS)
    if route == "embed":
        return "/v1/embeddings", {"model": route, "input": question}
    body: dict[str, Any] = {"model": route, "stream": stream, "user": f"user-{rng.randrange(50)}"}
    if route.startswith("prompt:"):
        body["prompt_variables"] = {"product": rng.choice(PRODUCTS)}
    body["messages"] = [{"role": "user", "content": question}]
    return "/v1/chat/completions", body


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with session.get(url + "/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"gateway at {url} not ready after {timeout_s:g}s")
        await asyncio.sleep(0.5)


async def add_canary(session: aiohttp.ClientSession, url: str, token: str) -> None:
    """A second version of the prompt, approved, at 10%: the weights panel moves."""
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{url}/admin/prompts/{PROMPT}"
    content = {
        "model": "claude",
        "messages": [{"role": "system", "content": "You answer about {{product}}: short, kind."}],
        "params": {"temperature": 0.3},
    }
    async with session.post(base + "/versions", json=content, headers=headers) as response:
        if response.status >= 300:
            print(f"canary not added: {response.status} {await response.text()}", flush=True)
            return
        version = (await response.json())["version"]
    approve = {"note": "demo canary"}
    async with session.post(f"{base}/versions/{version}/approve", json=approve, headers=headers):
        pass  # already approved on a restart: fine
    routing = {"weights": {"v1": 90, version: 10}, "reason": "demo canary"}
    async with session.put(base + "/routing", json=routing, headers=headers) as response:
        print(f"canary {version} at 10%: HTTP {response.status}", flush=True)


async def send(
    session: aiohttp.ClientSession, url: str, rng: random.Random, statuses: Counter[str]
) -> None:
    path, body = pick_request(rng)
    headers = {"Authorization": f"Bearer {rng.choice(KEYS)}"}
    try:
        async with session.post(url + path, json=body, headers=headers) as response:
            await response.read()  # a stream too: read to the end
            statuses[str(response.status)] += 1
    except aiohttp.ClientError as exc:
        statuses[type(exc).__name__] += 1


async def run(url: str, rate: float, count: int | None, seed: int | None, admin_token: str) -> int:
    rng = random.Random(seed)
    statuses: Counter[str] = Counter()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await wait_ready(session, url, 60)
        if admin_token:
            await add_canary(session, url, admin_token)
        tasks: set[asyncio.Task[None]] = set()
        sent = 0
        started = time.monotonic()
        last_report = started
        while count is None or sent < count:
            task = asyncio.create_task(send(session, url, rng, statuses))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            if count is None and time.monotonic() - last_report >= 30:
                last_report = time.monotonic()
                print(json.dumps({"sent": sent, "statuses": dict(statuses)}), flush=True)
            # Open loop at `rate` per second, spaced at random like real arrivals.
            await asyncio.sleep(rng.expovariate(rate))
        if tasks:
            await asyncio.gather(*tasks)
    print(json.dumps({"sent": sent, "statuses": dict(statuses)}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second")
    parser.add_argument("--count", type=int, help="stop after this many requests")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    token = os.environ.get("GATEWAY_ADMIN_TOKEN", "")
    return asyncio.run(run(args.url.rstrip("/"), args.rate, args.count, args.seed, token))


if __name__ == "__main__":
    sys.exit(main())
