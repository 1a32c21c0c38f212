"""The mock provider's legacy completions (`/v1/completions`) in OpenAI's wire shape: a
`text_completion` with one choice per prompt, and its stream of `text_completion`
chunks (usage last when asked for), as OpenAI sends them."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.mock import count_tokens, reply_text, split_words


def prompts_of(body: dict[str, Any]) -> list[str] | None:
    """The prompts (a string, a list of strings, or token lists); None when malformed."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(isinstance(p, int) for p in prompt):
            return [" ".join(map(str, prompt))]
        if all(isinstance(p, list) for p in prompt):
            return [" ".join(map(str, p)) for p in prompt]
    return None


def _answer(prompt: str, words: int) -> str:
    return reply_text([{"role": "user", "content": prompt}], words)


def _usage(prompts: list[str], texts: list[str]) -> dict[str, int]:
    given = sum(count_tokens(p) for p in prompts)
    made = sum(count_tokens(t) for t in texts)
    return {"prompt_tokens": given, "completion_tokens": made, "total_tokens": given + made}


def text_completion(model: str, prompts: list[str], id_: str, words: int) -> dict[str, Any]:
    texts = [_answer(p, words) for p in prompts]
    return {
        "id": id_,
        "object": "text_completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {"text": t, "index": i, "logprobs": None, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ],
        "usage": _usage(prompts, texts),
    }


def text_completion_events(
    model: str, prompts: list[str], id_: str, words: int, include_usage: bool
) -> list[bytes]:
    """The framed events of a streamed completion, [DONE] included."""
    texts = [_answer(p, words) for p in prompts]

    def chunk(index: int, text: str, finish: str | None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        payload = {
            "id": id_,
            "object": "text_completion",
            "created": 1700000000,
            "model": model,
            "choices": [choice],
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    events: list[bytes] = []
    for index, text in enumerate(texts):
        events += [chunk(index, w, None) for w in split_words(text)]
        events.append(chunk(index, "", "stop"))
    if include_usage:
        last = {
            "id": id_,
            "object": "text_completion",
            "created": 1700000000,
            "model": model,
            "choices": [],
            "usage": _usage(prompts, texts),
        }
        events.append(b"data: " + orjson.dumps(last) + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]
