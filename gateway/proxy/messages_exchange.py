"""The engine attempts of one `POST /v1/messages` call: to a target that speaks the
Messages API (`type = "anthropic"`) the client's body goes as it came; to any other it
goes through chat (the call's body), and the chat answer or chunks come back as a
Messages answer or events. Each attempt chooses for its own target, so a route fails
over across types on the same request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.config.routes import Target
from gateway.errors import UpstreamError
from gateway.providers.anthropic_stream import loads
from gateway.providers.messages_from_chat import message_from_chat, stream_error_event
from gateway.providers.messages_from_chat_stream import ChatToMessagesStream
from gateway.providers.messages_native import (
    NativeMessagesStream,
    native_body,
    native_request,
    read_message,
)
from gateway.proxy.call import Call
from gateway.proxy.pipeline import Completed, as_sent, chat_cannot_carry, exchange
from gateway.proxy.relay import StreamStart, start_stream
from gateway.proxy.runtime import ProviderRuntime

# The client's headers an Anthropic target hears.
PASSED_ON = ("anthropic-version", "anthropic-beta")


def speaks_messages(provider: ProviderRuntime) -> bool:
    return provider.config.type == "anthropic"


class MessagesExchange:
    """`complete` and `open` are the call's attempts; afterwards `mode` says how the
    answer was served (native, translated) and `status` how a stream ended."""

    def __init__(
        self, body: Mapping[str, Any], headers: Mapping[str, str], untranslatable: str | None
    ) -> None:
        self.body = body  # the client's Messages request, checked
        self.headers = {name: headers[name] for name in PASSED_ON if name in headers}
        self.untranslatable = untranslatable
        self._native: dict[str, Any] | None = None  # made at the first native attempt
        self.mode = ""
        self.status = 0  # a stream's end: 200 ended well, 502 failed after its first byte

    def _native_body(self, call: Call, target: Target) -> bytes:
        if self._native is None:
            self._native = native_body(self.body, call.prompt_messages, call.prompt_params)
        return orjson.dumps({**self._native, "model": target.model})

    def _translatable(self) -> None:
        if self.untranslatable is not None:
            raise chat_cannot_carry(self.untranslatable, "Anthropic Messages")

    async def complete(
        self, call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
    ) -> Completed:
        """An engine attempt: one non-streamed answer."""
        adapter = provider.adapter
        if speaks_messages(provider):
            body = self._native_body(call, target)
            request = native_request(provider.config, body, False, self.headers)
            raw, _, back = await exchange(
                provider, call.stamp(request), timeout_s, as_sent, as_it_came=True
            )
            usage = read_message(raw)
            self.mode = "native"
            return raw, usage, back
        self._translatable()
        request = adapter.chat_request(provider.config, target.model, call.body, False)
        raw, _, back = await exchange(provider, call.stamp(request), timeout_s, as_sent)
        chat, usage = adapter.chat_response(raw, target.model)
        answer = message_from_chat(loads(chat, "a response"), usage, target.model)
        self.mode = "translated"
        return orjson.dumps(answer), usage, back

    async def open(
        self, call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
    ) -> StreamStart:
        """An engine attempt: a Messages event stream, up to its first token."""
        adapter = provider.adapter
        translator: NativeMessagesStream | ChatToMessagesStream
        if speaks_messages(provider):
            body = self._native_body(call, target)
            request = native_request(provider.config, body, True, self.headers)
            translator, mode = NativeMessagesStream(), "native"
        else:
            self._translatable()
            request = adapter.chat_request(provider.config, target.model, call.body, True)
            inner = adapter.chat_stream(target.model, True)  # its usage chunk is read here
            translator, mode = ChatToMessagesStream(inner, target.model), "translated"
        start = await start_stream(call, provider, request, translator, timeout_s)
        start.ending = _Ending(self)
        self.mode = mode
        return start


class _Ending:
    """A Messages stream ends with its own `message_stop` (no [DONE]), or with an
    `error` event."""

    def __init__(self, exchange: MessagesExchange) -> None:
        self.exchange = exchange

    async def done(self) -> bytes:
        self.exchange.status = 200
        return b""

    def failed(self, error: UpstreamError) -> bytes:
        self.exchange.status = 502
        return stream_error_event(error)
