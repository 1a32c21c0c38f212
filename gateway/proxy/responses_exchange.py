"""The engine attempts of one `POST /v1/responses` call: to a target that speaks the
Responses API (`type = "openai"`) the request goes as it is; to any other it goes
through chat (the call's body), and the chat answer or chunks come back as a Responses
object or events. Each attempt chooses for its own target, so a route fails over
across types. The answer is kept for `previous_response_id` before the client sees
its end: a follow-up sent the moment the answer is complete finds it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.config.routes import Target
from gateway.errors import UpstreamError
from gateway.providers.openai import OpenAIAdapter
from gateway.providers.responses_chat import new_id, response_from_chat
from gateway.providers.responses_chat_stream import ChatToResponsesStream
from gateway.providers.responses_native import (
    NativeResponsesStream,
    native_body,
    native_request,
    read_response,
)
from gateway.proxy.call import Call
from gateway.proxy.pipeline import Completed, as_sent, chat_cannot_carry, exchange
from gateway.proxy.relay import StreamStart, start_stream
from gateway.proxy.runtime import ProviderRuntime
from gateway.store.errors import StoreUnavailable
from gateway.store.responses import ResponseStore

log = logging.getLogger("gateway.responses")
Stream = NativeResponsesStream | ChatToResponsesStream


def speaks_responses(provider: ProviderRuntime) -> bool:
    return provider.config.type == "openai" and isinstance(provider.adapter, OpenAIAdapter)


class ResponsesExchange:
    """`complete` and `open` are the call's attempts; afterwards `answer` is the
    Responses object that answered (a stream's, once it has ended well) and `mode`
    how it was served."""

    def __init__(
        self,
        body: Mapping[str, Any],
        items: Sequence[Mapping[str, Any]],
        untranslatable: str | None,
        keep: ResponseStore | None,
        key: str,
    ) -> None:
        self.body = body  # the client's Responses request
        self.items = list(items)  # this response's input: the kept conversation, then the client's
        self.untranslatable = untranslatable
        self.keep = keep  # where the answer goes for follow-ups; None: `store: false`
        self.key = key  # the client key's name: only its own follow-ups find the answer
        self.response_id = new_id("resp")  # a translated answer's (a native one has its own)
        self.answer: dict[str, Any] | None = None
        self.mode = ""
        self.status = 0  # a stream's end: 200 ended well, 502 failed after its first byte

    def _native_body(self, call: Call, target: Target) -> dict[str, Any]:
        prompt = [{"role": m["role"], "content": m["content"]} for m in call.prompt_messages]
        return native_body(self.body, target.model, [*prompt, *self.items], call.prompt_params)

    def _translatable(self) -> None:
        if self.untranslatable is not None:
            raise chat_cannot_carry(self.untranslatable, "OpenAI Responses")

    async def complete(
        self, call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
    ) -> Completed:
        """An engine attempt: one non-streamed response."""
        adapter = provider.adapter
        if speaks_responses(provider):
            assert isinstance(adapter, OpenAIAdapter)
            body = self._native_body(call, target)
            request = native_request(adapter, provider.config, target.model, body)
            raw, _, back = await exchange(provider, call.stamp(request), timeout_s, as_sent)
            data, usage = read_response(raw)
            if self.body.get("previous_response_id"):  # resolved here: say which it was
                data["previous_response_id"] = self.body["previous_response_id"]
                raw = orjson.dumps(data)
            self.answer, self.mode = data, "native"
            return raw, usage, back
        self._translatable()
        request = adapter.chat_request(provider.config, target.model, call.body, False)
        raw, _, back = await exchange(provider, call.stamp(request), timeout_s, as_sent)
        chat, usage = adapter.chat_response(raw, target.model)
        data = response_from_chat(chat, usage, self.body, self.response_id)
        self.answer, self.mode = data, "translated"
        return orjson.dumps(data), usage, back

    async def open(
        self, call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
    ) -> StreamStart:
        """An engine attempt: a Responses event stream, up to its first token."""
        adapter = provider.adapter
        translator: Stream
        if speaks_responses(provider):
            assert isinstance(adapter, OpenAIAdapter)
            body = self._native_body(call, target)
            request = native_request(adapter, provider.config, target.model, body)
            translator, mode = NativeResponsesStream(self.body, target.model), "native"
        else:
            self._translatable()
            request = adapter.chat_request(provider.config, target.model, call.body, True)
            inner = adapter.chat_stream(target.model, False)
            translator = ChatToResponsesStream(inner, self.body, self.response_id, target.model)
            mode = "translated"
        start = await start_stream(call, provider, request, translator, timeout_s)
        start.ending = _Ending(self, translator)
        self.mode = mode
        return start

    async def kept(self) -> None:
        """The answer to the store, for a follow-up; a store that cannot be reached
        costs the follow-up, never this answer."""
        answer = self.answer
        if self.keep is None or answer is None or not isinstance(answer.get("id"), str):
            return
        record = {"key": self.key, "input": self.items, "output": answer.get("output") or []}
        try:
            async with asyncio.timeout(1.0):
                await self.keep.put(answer["id"], record)
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("response %s not kept for follow-ups: %s", answer["id"], exc)


class _Ending:
    """A Responses stream ends with its own last event (no [DONE]); before that goes
    out, the answer is kept."""

    def __init__(self, exchange: ResponsesExchange, translator: Stream) -> None:
        self.exchange, self.translator = exchange, translator

    async def done(self) -> bytes:
        exchange = self.exchange
        exchange.answer, exchange.status = self.translator.response, 200
        await exchange.kept()
        return b""

    def failed(self, error: UpstreamError) -> bytes:
        self.exchange.status = 502
        return self.translator.failed(error)
