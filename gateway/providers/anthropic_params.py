"""OpenAI chat parameters Anthropic has no field of its own for, decided as data: which
are adapted with their meaning kept, which are dropped as hints, and which make an
Anthropic target ineligible (`UpstreamError("unsupported")`, raised while the request
is built, before any call: the engine then tries the next target).

Adapted:
- `response_format` `json_schema` / `json_object`: a tool whose `input_schema` is the
  schema, forced with `tool_choice`; its input comes back as the message's JSON text
  (`AnswerShape.json_tool`), `finish_reason` "stop".
- `reasoning_effort`: adaptive thinking with `output_config.effort` on Claude 4.6 and
  later (`ADAPTIVE_EFFORTS`; the newest models refuse a token budget), a thinking
  budget before them (`THINKING_BUDGETS`); thinking is left off where Anthropic cannot
  think under the request's other terms (`thinking_config`).
- legacy `functions` / `function_call`: tools and tool choice; the answer's tool call
  comes back as `function_call` (`AnswerShape.functions`).

Dropped (best-effort hints, the answer's meaning is the same without them): `seed`,
`presence_penalty`, `frequency_penalty`, `prediction`, `service_tier`, `store`,
`metadata`, `verbosity`, `prompt_cache_key`, `safety_identifier`, and names unknown here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeGuard

from gateway.errors import UpstreamError

# reasoning_effort → Anthropic `thinking.budget_tokens` (1024 is Anthropic's minimum).
THINKING_BUDGETS: dict[str, int | None] = {
    "none": None,
    "minimal": 1024,
    "low": 4096,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
}
# reasoning_effort → `output_config.effort` where the model thinks adaptively.
ADAPTIVE_EFFORTS: dict[str, str | None] = {
    "none": None,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "max",
}
# Claude 4.6 and later, by name (Anthropic's ids and cloud ids such as
# `anthropic.claude-opus-4-6-v1`); dated ids like `claude-sonnet-4-20250514` are 4.0.
_ADAPTIVE_MODEL = re.compile(
    r"claude-(?:opus|sonnet|haiku)-4-[6-9](?!\d)|claude-[a-z]+-(?:[5-9]|[1-9]\d)(?!\d)|mythos|fable"
)
JSON_TOOL = "json_answer"  # the forced tool's name when the schema has no usable name
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})


class AnswerShape(NamedTuple):
    """How an Anthropic answer goes back, decided from the request alone (so the request
    and the answer translations agree without sharing state)."""

    json_tool: str | None = None  # this tool's input is the answer's JSON content
    functions: bool = False  # the client used legacy `functions`: answer `function_call`


PLAIN = AnswerShape()


def _unsupported(param: str, why: str) -> UpstreamError:
    return UpstreamError("unsupported", f"anthropic cannot honour '{param}': {why}", param=param)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_eligible(body: Mapping[str, Any]) -> None:
    """Raises `unsupported` naming the first parameter Anthropic cannot honour."""
    n = body.get("n")
    if _is_number(n) and n > 1:
        raise _unsupported("n", "it returns one choice per request")
    temperature = body.get("temperature")
    if _is_number(temperature) and not 0 <= temperature <= 1:
        raise _unsupported("temperature", f"it accepts 0 to 1, not {temperature:g}")
    if body.get("logprobs"):
        raise _unsupported("logprobs", "it returns no log probabilities")
    if body.get("top_logprobs"):
        raise _unsupported("top_logprobs", "it returns no log probabilities")
    if body.get("logit_bias"):
        raise _unsupported("logit_bias", "it has no token biases")
    if body.get("audio") or any(m != "text" for m in body.get("modalities") or ()):
        raise _unsupported("modalities", "it answers in text only")
    if body.get("web_search_options") is not None:
        raise _unsupported("web_search_options", "web search is a server tool there")
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in THINKING_BUDGETS:
        raise _unsupported("reasoning_effort", f"{effort!r} has no thinking budget")
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in _RESPONSE_FORMATS:
            raise _unsupported("response_format", f"type {kind!r} is not known")
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict) and schema.get("type", "object") != "object":
            raise _unsupported("response_format", "its answers in a schema are objects")


def _forces_tool(choice: Any) -> bool:
    return choice == "required" or isinstance(choice, dict)


def answer_shape(body: Mapping[str, Any]) -> AnswerShape:
    functions = not body.get("tools") and bool(body.get("functions"))
    response_format = body.get("response_format")
    json_tool: str | None = None
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        choice = body.get("function_call") if functions else body.get("tool_choice")
        # A turn that must call the client's tool is a tool call, not the final answer.
        if not _forces_tool(choice):
            json_tool = _json_tool_name(response_format, body, functions)
    return AnswerShape(json_tool, functions) if json_tool or functions else PLAIN


def _json_tool_name(response_format: Mapping[str, Any], body: Mapping[str, Any], fns: bool) -> str:
    spec = response_format.get("json_schema")
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        name = JSON_TOOL
    taken = {_tool_name(t) for t in (body.get("functions") if fns else body.get("tools")) or ()}
    return name if name not in taken else f"{name}_{JSON_TOOL}"


def _tool_name(tool: Any) -> Any:
    if not isinstance(tool, dict):
        return None
    function = tool.get("function")
    return function.get("name") if isinstance(function, dict) else tool.get("name")


def json_tool(response_format: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The Anthropic tool whose input is the answer in the requested JSON shape (a tool
    input is an object, as a json_object answer and a json_schema root are)."""
    spec = response_format.get("json_schema")
    spec = spec if isinstance(spec, dict) else {}
    schema = spec.get("schema")
    description = spec.get("description")
    return {
        "name": name,
        "description": (f"{description} " if isinstance(description, str) and description else "")
        + "Give your final answer by calling this tool; its input is the answer.",
        "input_schema": schema if isinstance(schema, dict) else {"type": "object"},
    }


def legacy_tools(body: Mapping[str, Any]) -> tuple[Any, Any]:
    """Legacy `functions` / `function_call` as `tools` / `tool_choice`."""
    functions = body.get("functions")
    tools = [{"type": "function", "function": f} for f in functions] if functions else None
    call = body.get("function_call")
    if isinstance(call, dict):
        return tools, {"type": "function", "function": {"name": call.get("name")}}
    return tools, call


def with_json_tool(
    tools: list[dict[str, Any]], choice: dict[str, Any] | None, tool: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The client's tools and tool choice with the answer's tool added: forced alone, or
    among the client's tools as "use one of them" (the answer, or a call)."""
    if not tools or (choice is not None and choice.get("type") == "none"):
        return [*tools, tool], {"type": "tool", "name": tool["name"]}
    out = {"type": "any"}
    if choice is not None and "disable_parallel_tool_use" in choice:
        out["disable_parallel_tool_use"] = choice["disable_parallel_tool_use"]
    return [*tools, tool], out


def thinks_adaptively(model: str, mode: str) -> bool:
    """`mode`: the provider's `thinking` setting (auto, adaptive, budget)."""
    return mode == "adaptive" or (mode == "auto" and bool(_ADAPTIVE_MODEL.search(model)))


class Thinking(NamedTuple):
    thinking: dict[str, Any] | None
    max_tokens: int
    output_config: dict[str, Any] | None = None


def thinking_config(
    body: Mapping[str, Any],
    tool_choice: dict[str, Any] | None,
    max_tokens: int,
    adaptive: bool = False,
) -> Thinking:
    """Thinking and `max_tokens` for `reasoning_effort`. Adaptive: the effort goes in
    `output_config` (it bounds every token of the answer), thinking as Anthropic decides.
    Budgeted: `max_tokens` must exceed the budget; when it does not, it is raised by
    it. Either way thinking is a hint, left off
    where Anthropic refuses it alongside the request's other terms, which carry the
    answer's meaning: a forced tool (also for `response_format`), a temperature other
    than 1, `top_k`, `top_p` under 0.95, and a tool loop's continuation (the assistant
    turn it continues carried no thinking block to send back)."""
    effort = str(body.get("reasoning_effort"))
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        return Thinking(None, max_tokens)
    output_config = {"effort": ADAPTIVE_EFFORTS[effort]} if adaptive else None
    temperature, top_p = body.get("temperature"), body.get("top_p")
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if (
        (tool_choice is not None and tool_choice.get("type") in ("any", "tool"))
        or (temperature is not None and temperature != 1)
        or body.get("top_k") is not None
        or (_is_number(top_p) and top_p < 0.95)
        or (isinstance(last, dict) and last.get("role") in ("tool", "function"))
    ):
        return Thinking(None, max_tokens, output_config)
    if adaptive:
        return Thinking({"type": "adaptive"}, max_tokens, output_config)
    if max_tokens <= budget:
        max_tokens += budget
    return Thinking({"type": "enabled", "budget_tokens": budget}, max_tokens)
