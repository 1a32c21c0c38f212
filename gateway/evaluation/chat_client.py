"""The gateway's OpenAI-compatible API from the command line (suites): one chat
completion, streamed or not, with what it took (latency, time to first token), what it
used (tokens, and the cost from the gateway's pricing table) and who served it (the
`X-Gateway-*` headers). Standard library only, like the rest of the CLI; callers run
several at once in threads."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config.loader import Pricing
from gateway.providers.base import Usage
from gateway.telemetry.recorder import cost_usd


@dataclass
class ChatResult:
    status: int  # 0: no HTTP answer at all
    text: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    usage: Usage | None = None
    cost_usd: float | None = None  # None: no usage, or the model has no price
    provider: str = ""
    model: str = ""
    version: str = ""
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


def pricing_from_config(config: Mapping[str, Any]) -> dict[str, Pricing]:
    """The `[pricing]` table from `GET /admin/config`."""
    prices = {}
    for model, p in (config.get("pricing") or {}).items():
        prices[model] = Pricing(
            input_per_mtok=float(p["input_per_mtok"]),
            output_per_mtok=float(p["output_per_mtok"]),
            cached_input_per_mtok=float(p.get("cached_input_per_mtok", p["input_per_mtok"])),
            cache_write_per_mtok=float(p.get("cache_write_per_mtok", p["input_per_mtok"])),
        )
    return prices


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(data.get("prompt_tokens") or 0),
        output_tokens=int(data.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


class ChatClient:
    def __init__(
        self, url: str, key: str, pricing: Mapping[str, Pricing], timeout_s: float = 300.0
    ) -> None:
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self.key = key
        self.pricing = pricing
        self.timeout_s = timeout_s

    def complete(self, body: Mapping[str, Any], stream: bool = False) -> ChatResult:
        payload = dict(body, stream=stream)
        if stream:
            payload["stream_options"] = {"include_usage": True}
        else:
            payload.pop("stream_options", None)
        headers = {"Content-Type": "application/json", "X-Gateway-No-Capture": "1"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                result = ChatResult(status=response.status)
                _served_by(result, response.headers)
                if stream:
                    self._read_stream(result, response, began)
                else:
                    self._read_body(result, response.read())
        except urllib.error.HTTPError as exc:
            result = ChatResult(status=exc.code, error=_error_message(exc.read()))
            _served_by(result, exc.headers)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            result = ChatResult(status=0, error=f"no answer: {reason}")
        result.latency_ms = (time.perf_counter() - began) * 1000
        price = self.pricing.get(result.model)
        if result.usage is not None and price is not None:
            result.cost_usd = cost_usd(result.usage, price)
        return result

    @staticmethod
    def _read_body(result: ChatResult, raw: bytes) -> None:
        try:
            data = json.loads(raw)
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            result.error = "the answer is not a chat completion"
            return
        result.text = message.get("content") or ""
        if message.get("tool_calls"):
            result.text += json.dumps(message["tool_calls"])
        result.usage = _usage(data.get("usage"))

    @staticmethod
    def _read_stream(result: ChatResult, response: Any, began: float) -> None:
        parts: list[str] = []
        done = False
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            if "error" in chunk:
                result.error = _error_message(data.encode())
                break
            if chunk.get("usage"):
                result.usage = _usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                piece = delta.get("content") or (
                    json.dumps(delta["tool_calls"]) if delta.get("tool_calls") else ""
                )
                if piece:
                    if result.ttft_ms is None:
                        result.ttft_ms = (time.perf_counter() - began) * 1000
                    parts.append(piece)
        result.text = "".join(parts)
        if not done and result.error is None:
            result.error = "the stream ended without [DONE]"


def _served_by(result: ChatResult, headers: Any) -> None:
    result.provider = headers.get("X-Gateway-Provider", "") or ""
    result.model = headers.get("X-Gateway-Model", "") or ""
    result.version = headers.get("X-Gateway-Prompt-Version", "") or ""
    result.request_id = headers.get("X-Request-Id", "") or ""


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw[:200].decode(errors="replace") or "error"
