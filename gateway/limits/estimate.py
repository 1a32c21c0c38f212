"""Tokens a request is charged before its call: a quarter of the characters of what it
sends, plus what it may get back. Its usage corrects the count afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

_SENT = ("messages", "input", "prompt")  # chat, embeddings and responses, completions
_ANSWER_LIMITS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def estimate_tokens(body: Mapping[str, Any], default_answer: int) -> int:
    sent = 0
    for name in _SENT:
        value = body.get(name)
        if value is not None:
            sent += len(value) if isinstance(value, str) else len(orjson.dumps(value))
    answer = default_answer
    for name in _ANSWER_LIMITS:
        value = body.get(name)
        if type(value) is int and value > 0:
            answer = value
            break
    return sent // 4 + answer
