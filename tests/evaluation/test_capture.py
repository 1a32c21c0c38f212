"""Request capture: on and off, sampling, route and prompt limits, redaction before
anything is stored (read back raw from the file and from Redis), the opt-out header,
streams with their full answer, rotation, caps, and the admin routes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from gateway.appkeys import CAPTURE
from gateway.config.loader import load_config
from gateway.config.source import ConfigError
from tests.conftest import CLIENT_TOKEN, Gateway, Upstream
from tests.eval_support import Admin, gateway_config
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
SECRET = "sk-live-4f9Qz81"
CARD = "4111-1111-1111-1111"
REDACT = "redact = ['sk-live-[A-Za-z0-9]+', '\\b\\d{4}(-\\d{4}){3}\\b']\n"


async def ask(gw: Gateway, request_id: str, content: str = "hello", **kwargs: Any) -> Any:
    async with gw.client() as client:
        return await ask_with(client, request_id, content, **kwargs)


async def ask_with(client: Any, request_id: str, content: str = "hello", **kwargs: Any) -> Any:
    headers = {"X-Request-Id": request_id, **kwargs.pop("extra_headers", {})}
    return await client.chat.completions.create(
        model=kwargs.pop("model", "prompt:support"),
        messages=[{"role": "user", "content": content}],
        extra_body={"prompt_variables": kwargs.pop("variables", {"product": "Acme"})},
        extra_headers=headers,
        **kwargs,
    )


async def captures(gw: Gateway, query: str = "") -> list[dict[str, Any]]:
    await gw.app[CAPTURE].flush()
    async with aiohttp.ClientSession() as session:
        status, body = await Admin(gw, session).call("GET", f"/captures{query}")
    assert status == 200, body
    result: list[dict[str, Any]] = body["captures"]
    return result


async def test_capture_is_off_by_default(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    await ask(gw, "off-1")
    assert await captures(gw) == []


async def test_a_captured_request_holds_the_request_answer_and_numbers(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    file = tmp_path / "cap" / "captures.jsonl"
    gw = await gateway_factory(
        gateway_config(upstream.base_url, f'enabled = true\nfile = "{file}"\n')
    )
    answer = await ask(gw, "cap-1", "Where is my order?", user="customer-7", max_tokens=50)
    (record,) = await captures(gw)
    assert record["request_id"] == "cap-1"
    assert (record["route"], record["prompt"], record["version"]) == ("chat", "support", "v1")
    assert (record["provider"], record["model"], record["status"]) == ("fake", "mock-gpt", 200)
    assert record["answer"] == answer.choices[0].message.content
    assert record["stream"] is False and record["error"] is None
    request = record["request"]
    assert request["model"] == "prompt:support"
    assert request["variables"] == {"product": "Acme"}
    assert request["messages"] == [{"role": "user", "content": "Where is my order?"}]
    assert request["params"] == {"user": "customer-7", "max_tokens": 50}  # the client's own
    assert request["prompt_messages"] == [{"role": "system", "content": "You answer for Acme."}]
    assert request["prompt_params"] == {"temperature": 0.2}
    assert record["usage"]["input_tokens"] == answer.usage.prompt_tokens
    assert record["usage"]["output_tokens"] == answer.usage.completion_tokens
    expected_cost = (answer.usage.prompt_tokens * 1.0 + answer.usage.completion_tokens * 2.0) / 1e6
    assert record["cost_usd"] == pytest.approx(expected_cost)
    assert record["latency_ms"] > 0 and record["ttft_ms"] is None
    assert (record.pop("labels"), record.pop("feedback")) == ([], [])  # beside the log
    raw = file.read_bytes()
    assert orjson.loads(raw.splitlines()[0]) == record
    for secret in (CLIENT_TOKEN, "sk-upstream-secret", "Authorization", "test-app"):
        assert secret.encode() not in raw  # no headers, no keys, not even the key's name


async def test_redaction_happens_before_the_file_and_the_opt_out_header_skips(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    file = tmp_path / "captures.jsonl"
    capture = f'enabled = true\nfile = "{file}"\n{REDACT}'
    gw = await gateway_factory(gateway_config(upstream.base_url, capture))
    await ask(
        gw,
        "red-1",
        f"my key is {SECRET} and card {CARD}",
        variables={"product": f"Acme {SECRET}", "card": CARD},
    )
    await ask(gw, "private-1", "private", extra_headers={"X-Gateway-No-Capture": "1"})
    (record,) = await captures(gw)
    assert record["request_id"] == "red-1"
    assert record["request"]["variables"] == {"product": "Acme [REDACTED]", "card": "[REDACTED]"}
    assert record["request"]["messages"][0]["content"] == "my key is [REDACTED] and card [REDACTED]"
    assert "[REDACTED]" in record["request"]["prompt_messages"][0]["content"]
    assert record["answer"] == "Mock answer to: my key is [REDACTED] and card [REDACTED]"
    raw = file.read_bytes()
    assert SECRET.encode() not in raw and CARD.encode() not in raw
    assert b"private-1" not in raw


async def test_sampling_and_route_and_prompt_limits(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    capture = 'enabled = true\nsample_rate = 0.3\nroutes = ["other"]\nprompts = ["support"]\n'
    gw = await gateway_factory(gateway_config(upstream.base_url, capture))
    async with gw.client() as client:
        await asyncio.gather(*(ask_with(client, f"s-{i}") for i in range(200)))
        for i in range(20):  # `chat` is neither a listed route nor a listed prompt
            await client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"X-Request-Id": f"chat-{i}"},
            )
            await client.chat.completions.create(
                model="other",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"X-Request-Id": f"other-{i}"},
            )
    found = await captures(gw, "?limit=1000")
    ids = [r["request_id"] for r in found]
    sampled = [i for i in ids if i.startswith("s-")]
    assert 20 <= len(sampled) <= 110  # 30% of 200 (mean 60, sd 6.5): bounds far apart
    assert not any(i.startswith("chat-") for i in ids)
    assert 1 <= sum(i.startswith("other-") for i in ids) <= 20
    assert len(set(ids)) == len(ids)
    only_prompt = await captures(gw, "?prompt=support&limit=1000")
    assert {r["request_id"] for r in only_prompt} == set(sampled)


async def test_file_rotation_keeps_max_files_and_reads_across_them(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    file = tmp_path / "caps" / "captures.jsonl"
    capture = (
        f'enabled = true\nfile = "{file}"\nmax_file_bytes = 2048\nmax_files = 3\nbatch_size = 1\n'
    )
    gw = await gateway_factory(gateway_config(upstream.base_url, capture))
    for i in range(12):
        await ask(gw, f"rot-{i}", "x" * 300)
        await gw.app[CAPTURE].flush()
    sizes = file_sizes(file.parent)
    assert sorted(sizes) == ["captures.jsonl", "captures.jsonl.1", "captures.jsonl.2"]
    assert all(size <= 2048 for size in sizes.values())
    found = await captures(gw, "?limit=100")
    ids = [r["request_id"] for r in found]
    assert ids[0] == "rot-11"  # newest first
    assert 3 <= len(ids) < 12  # the oldest went with the rotated-out file
    assert ids == [f"rot-{i}" for i in range(11, 11 - len(ids), -1)]
    assert [r["request_id"] for r in await captures(gw, "?limit=2")] == ["rot-11", "rot-10"]


def file_sizes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in directory.iterdir()}


async def test_admin_capture_routes(gateway_factory: GatewayFactory, upstream: Upstream) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url, "enabled = true\n"))
    await ask(gw, "one-1")
    await gw.app[CAPTURE].flush()
    async with aiohttp.ClientSession() as session:
        admin = Admin(gw, session)
        status, record = await admin.call("GET", "/captures/one-1")
        assert status == 200 and record["request_id"] == "one-1"
        status, error = await admin.call("GET", "/captures/nope")
        assert status == 404 and error["error"]["code"] == "capture_not_found"
        status, error = await admin.call("GET", "/captures?since=yesterday")
        assert status == 400
        status, found = await admin.call("GET", "/captures?since=1h&prompt=support")
        assert status == 200 and found["count"] == 1
        async with session.get(gw.url("/admin/captures")) as response:
            assert response.status == 401  # the admin token is required


async def test_redis_stream_capture_of_a_stream_with_its_full_answer_and_redaction(
    redis_server: RedisServer, gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    redis_server.command("CONFIG", "SET", "stream-node-max-entries", "10")
    capture = f"enabled = true\nmax_records = 20\n{REDACT}"
    gw = await gateway_factory(gateway_config(upstream.base_url, capture, redis_server.url))
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="prompt:support",
            messages=[{"role": "user", "content": f"stream please {SECRET}"}],
            extra_body={"prompt_variables": {"product": CARD}},
            extra_headers={"X-Request-Id": "stream-1"},
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert SECRET in text  # the client gets the answer as it is
    (record,) = await captures(gw)
    assert record["stream"] is True and record["ttft_ms"] is not None
    assert record["answer"] == text.replace(SECRET, "[REDACTED]")
    assert record["usage"]["output_tokens"] > 0  # asked of the provider even so
    client_redis = aioredis.Redis.from_url(redis_server.url)
    try:
        entries = await client_redis.xrange("gwtest:captures")
        assert len(entries) == 1
        everything = b""
        async for key in client_redis.scan_iter("gwtest:*"):  # captures and request index
            kind = await client_redis.type(key)
            if kind == b"stream":
                for _, fields in await client_redis.xrange(key):
                    everything += b"".join(fields.values())
            elif kind == b"string":
                everything += await client_redis.get(key) or b""
        assert b"stream please [REDACTED]" in everything
        assert SECRET.encode() not in everything and CARD.encode() not in everything
        assert CLIENT_TOKEN.encode() not in everything
        async with gw.client() as client:
            await asyncio.gather(*(ask_with(client, f"cap-{i}") for i in range(60)))
        await gw.app[CAPTURE].flush()
        assert await client_redis.xlen("gwtest:captures") <= 30  # MAXLEN ~ 20
    finally:
        await client_redis.aclose()
    found = await captures(gw, "?limit=100")
    assert found[0]["request_id"].startswith("cap-")
    async with aiohttp.ClientSession() as session:
        status, record = await Admin(gw, session).call(
            "GET", f"/captures/{found[-1]['request_id']}"
        )
        assert status == 200


def test_capture_config_is_checked(tmp_path: Path) -> None:
    base = gateway_config("http://127.0.0.1:9")
    for section, message in (
        ("redact = ['(unclosed']", "bad regex"),
        ('routes = ["nowhere"]', "unknown route"),
        ("sample_rate = 2", "from 0 to 1"),
        ("batch = 3", "unknown key"),
    ):
        path = tmp_path / "gw.toml"
        path.write_text(base.replace("{key_sha256}", "0" * 64) + f"\n[capture]\n{section}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    path.write_text(base.replace("{key_sha256}", "0" * 64) + '\n[capture]\nfile = "c.jsonl"\n')
    assert load_config(path).capture.file == str(tmp_path / "c.jsonl")
