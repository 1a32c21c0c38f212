"""Labels on captured requests: a reviewer puts several on one (who, when, a redacted
note), viewers read them on the capture and filter the captures by label and by
feedback, a viewer or an author cannot label (403), replicas on one Redis see the same
labels; a captured request becomes a dataset case in one call, with `from_request`,
and the case runs. Embedded and on a real Redis."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gateway.appkeys import CAPTURE, FEEDBACK
from tests.conftest import Gateway, Upstream
from tests.eval_support import gateway_config
from tests.evaluation.dataset_support import AUTHOR, VIEWER, Caller, admins
from tests.evaluation.test_capture import ask
from tests.evaluation.test_feedback import feedback
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
REVIEWER = "reviewer-token-9012"
SECRET = "sk-live-4f9Qz81"
CAPTURE_ON = "enabled = true\n        redact = ['sk-live-[A-Za-z0-9]+']\n"
REVIEWERS = f"""
        [[admins]]
        name = "rita"
        sha256 = "{hashlib.sha256(REVIEWER.encode()).hexdigest()}"
        roles = ["reviewer"]
"""


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return ""
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


async def gateways(factory: GatewayFactory, upstream: Upstream, redis_url: str) -> list[Gateway]:
    """One gateway, or two replicas on one Redis."""
    cfg = gateway_config(
        upstream.base_url, capture=CAPTURE_ON, redis_url=redis_url, extra=admins() + REVIEWERS
    )
    first = await factory(cfg)
    return [first, await factory(cfg)] if redis_url else [first]


async def captured(gw: Gateway, *ids: str) -> None:
    for request_id in ids:
        await ask(gw, request_id, content=f"question {request_id}")
    await gw.app[CAPTURE].flush()
    await gw.app[FEEDBACK].index.flush()


def ids(answer: dict[str, Any]) -> list[str]:
    return [c["request_id"] for c in answer["captures"]]


async def test_labels_are_put_read_filtered_and_removed(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    replicas = await gateways(gateway_factory, upstream, redis_url)
    first, last = replicas[0], replicas[-1]
    await captured(first, "req-a", "req-b", "req-c")
    async with aiohttp.ClientSession() as session:
        rita, vera = Caller(first, session, REVIEWER), Caller(last, session, VIEWER)
        note = f"quotes the key {SECRET}"
        put = await rita.ok(
            "POST", "/captures/req-a/labels", {"label": "leak", "note": note}, status=201
        )
        assert [(x["label"], x["by"], x["note"]) for x in put["labels"]] == [
            ("leak", "rita", "quotes the key [REDACTED]")
        ]
        await rita.ok("POST", "/captures/req-a/labels", {"label": "good-tone"}, status=201)
        again = await rita.ok("POST", "/captures/req-a/labels", {"label": "leak", "note": "x"})
        assert [x["note"] for x in again["labels"]] == ["", "x"]  # by name; the note is new
        await rita.ok("POST", "/captures/req-b/labels", {"label": "good-tone"}, status=201)

        shown = await vera.ok("GET", "/captures/req-a")  # on the other replica
        assert [x["label"] for x in shown["labels"]] == ["good-tone", "leak"]
        assert shown["labels"][0]["at"].endswith("Z") and shown["feedback"] == []
        assert (await vera.ok("GET", "/captures/req-c/labels"))["labels"] == []
        assert ids(await vera.ok("GET", "/captures?label=good-tone")) == ["req-b", "req-a"]
        assert ids(await vera.ok("GET", "/captures?label=leak&prompt=support")) == ["req-a"]
        assert ids(await vera.ok("GET", "/captures?label=nothing")) == []
        listed = await vera.ok("GET", "/captures")
        assert {c["request_id"]: len(c["labels"]) for c in listed["captures"]} == {
            "req-a": 2,
            "req-b": 1,
            "req-c": 0,
        }

        left = await rita.ok("DELETE", "/captures/req-a/labels/leak")
        assert [x["label"] for x in left["labels"]] == ["good-tone"]
        status, error = await rita.call("DELETE", "/captures/req-a/labels/leak")
        assert status == 404 and error["error"]["code"] == "label_not_found"
        assert ids(await vera.ok("GET", "/captures?label=leak")) == []

        for path, body, code in (
            ("/captures/nope/labels", {"label": "x"}, 404),
            ("/captures/req-a/labels", {"label": "Not OK"}, 400),
            ("/captures/req-a/labels", {"label": "x", "colour": "red"}, 400),
            ("/captures/req-a/labels", {"note": "no label"}, 400),
            ("/captures/req-a/labels", {"label": "x", "note": "n" * 2001}, 400),
            ("/captures/req-a/labels", {"label": "x", "by": "somebody"}, 400),
        ):
            status, error = await rita.call("POST", path, body)
            assert status == code, (path, body, error)
            assert error["error"]["type"] == "invalid_request_error" or code == 404


async def test_captures_filter_by_feedback_and_carry_it(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    replicas = await gateways(gateway_factory, upstream, redis_url)
    first, last = replicas[0], replicas[-1]
    await captured(first, "req-up", "req-down", "req-none", "req-flip")
    for request_id, score in (("req-up", 1), ("req-down", -1), ("req-flip", 1)):
        status, _ = await feedback(last, {"request_id": request_id, "score": score})
        assert status == 200
    body = {"request_id": "req-flip", "score": -1, "comment": f"bad {SECRET}"}
    assert (await feedback(first, body))[0] == 200  # replaces its positive one
    async with aiohttp.ClientSession() as session:
        vera = Caller(last, session, VIEWER)
        assert ids(await vera.ok("GET", "/captures?feedback=positive")) == ["req-up"]
        assert ids(await vera.ok("GET", "/captures?feedback=negative")) == ["req-flip", "req-down"]
        assert ids(await vera.ok("GET", "/captures?feedback=any&limit=2")) == [
            "req-flip",
            "req-down",
        ]
        assert ids(await vera.ok("GET", "/captures?feedback=none")) == ["req-none"]
        status, error = await vera.call("GET", "/captures?feedback=maybe")
        assert status == 400 and error["error"]["param"] == "feedback"
        flip = await vera.ok("GET", "/captures/req-flip")
        (entry,) = flip["feedback"]  # one per key: the latest
        assert (entry["value"], entry["key"], entry["comment"]) == (
            "negative",
            "test-app",
            "bad [REDACTED]",
        )
        assert entry["kind"] == "explicit" and entry["replaced"] is True


async def test_only_reviewers_label_and_authors_make_cases(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    (gw,) = await gateways(gateway_factory, upstream, "")
    await captured(gw, "req-a")
    async with aiohttp.ClientSession() as session:
        vera, ada, rita = (Caller(gw, session, t) for t in (VIEWER, AUTHOR, REVIEWER))
        for caller in (vera, ada):
            status, error = await caller.call("POST", "/captures/req-a/labels", {"label": "x"})
            assert status == 403 and error["error"]["code"] == "insufficient_role"
            assert error["error"]["role_needed"] == "reviewer"
        await rita.ok("POST", "/captures/req-a/labels", {"label": "x"}, status=201)
        status, error = await vera.call("DELETE", "/captures/req-a/labels/x")
        assert status == 403 and error["error"]["code"] == "insufficient_role"
        status, error = await rita.call("POST", "/captures/req-a/dataset-case", {"dataset": "d"})
        assert status == 403 and error["error"]["role_needed"] == "author"
        assert (await vera.ok("GET", "/captures/req-a/labels"))["labels"][0]["label"] == "x"
        await vera.ok("GET", "/feedback")


async def test_a_captured_request_becomes_a_dataset_case_in_one_call(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    replicas = await gateways(gateway_factory, upstream, redis_url)
    first, last = replicas[0], replicas[-1]
    await captured(first, "req-a", "req-b")
    async with aiohttp.ClientSession() as session:
        ada, rita = Caller(last, session, AUTHOR), Caller(last, session, REVIEWER)
        await rita.ok("POST", "/captures/req-a/labels", {"label": "golden"}, status=201)
        expect = {"contains": "question req-a", "regex": "^Mock answer"}
        made = await ada.ok(
            "POST", "/captures/req-a/dataset-case", {"dataset": "golden", "expect": expect}, 201
        )
        assert (made["dataset"], made["revision"], made["dataset_created"]) == ("golden", 1, True)
        case = made["case"]
        assert (case["name"], case["from_request"], case["checks"]) == (
            "req-req-a",
            "req-a",
            expect,
        )
        assert case["variables"] == {"product": "Acme"}
        assert case["messages"] == [{"role": "user", "content": "question req-a"}]
        assert case["expected"] == "Mock answer to: question req-a"
        second = await ada.ok(
            "POST", "/captures/req-b/dataset-case", {"dataset": "golden", "name": "b"}, 201
        )
        assert (second["revision"], second["dataset_created"]) == (2, False)
        dataset = await ada.ok("GET", "/datasets/golden")
        assert [(c["name"], c.get("from_request")) for c in dataset["cases"]] == [
            ("req-req-a", "req-a"),
            ("b", "req-b"),
        ]
        assert dataset["by"] == "ada"
        for body, code in (
            ({"dataset": "golden"}, 400),  # req-req-a is taken
            ({"dataset": "golden", "name": "c", "expect": {"nope": 1}}, 400),
            ({"dataset": "bad name!"}, 400),
            ({"dataset": "golden", "name": "c", "extra": 1}, 400),
        ):
            status, error = await ada.call("POST", "/captures/req-a/dataset-case", body)
            assert status == code, (body, error)
        status, error = await ada.call("POST", "/captures/nope/dataset-case", {"dataset": "g"})
        assert status == 404 and error["error"]["code"] == "capture_not_found"
        # The case runs as it is.
        run = await ada.ok(
            "POST", "/prompts/support/versions/v1/test", {"dataset": "golden"}, status=201
        )
        assert (run["total"], run["passed"], run["dataset_revision"]) == (2, 2, 2)
