"""`/admin/datasets`: create, list, read any revision, add cases, replace them (a new
revision only when they change), cases made from a real captured request; bad cases
refused naming the case and the field; viewers read and authors write. On the
embedded store and on a real Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from gateway.appkeys import CAPTURE
from tests.conftest import Gateway, Upstream
from tests.eval_support import gateway_config
from tests.evaluation.dataset_support import (
    ACME,
    AUTHOR,
    PASSING,
    VIEWER,
    Caller,
    admins,
    case,
)
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return ""
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


async def test_datasets_are_made_revised_and_read_back(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    gw = await gateway_factory(
        gateway_config(upstream.base_url, redis_url=redis_url, extra=admins())
    )
    async with aiohttp.ClientSession() as session:
        vera, ada = Caller(gw, session, VIEWER), Caller(gw, session, AUTHOR)
        assert await vera.ok("GET", "/datasets") == {"datasets": []}
        status, error = await vera.call("POST", "/datasets", {"name": "faq"})
        assert status == 403 and error["error"]["code"] == "insufficient_role"

        body = {"name": "faq", "description": "what people ask", "cases": PASSING}
        made = await ada.ok("POST", "/datasets", body, status=201)
        assert (made["revision"], made["by"], made["changed"]) == (1, "ada", True)
        assert made["cases"][0] == {**PASSING[0], "params": {}}  # every field, as kept
        status, error = await ada.call("POST", "/datasets", body)
        assert status == 409 and error["error"]["code"] == "dataset_exists"

        third = case("third", "bye", contains="bye")
        added = await ada.ok("POST", "/datasets/faq/cases", {"cases": [third]})
        assert added["revision"] == 2 and [c["name"] for c in added["cases"]] == [
            "greeting",
            "exact",
            "third",
        ]
        same = await ada.ok("PUT", "/datasets/faq/cases", {"cases": [*PASSING, third]})
        assert (same["revision"], same["changed"]) == (2, False)  # the same cases
        replaced = await ada.ok("PUT", "/datasets/faq/cases", {"cases": [third]})
        assert (replaced["revision"], replaced["changed"]) == (3, True)

        old = await vera.ok("GET", "/datasets/faq?revision=1")
        assert (old["revision"], old["current_revision"], len(old["cases"])) == (1, 3, 2)
        assert old["description"] == "what people ask" and old["created_by"] == "ada"
        current = await vera.ok("GET", "/datasets/faq/cases")
        assert current["revision"] == 3 and [c["name"] for c in current["cases"]] == ["third"]
        status, error = await vera.call("GET", "/datasets/faq?revision=9")
        assert status == 404 and error["error"]["code"] == "revision_not_found"
        status, error = await vera.call("GET", "/datasets/nope")
        assert status == 404 and error["error"]["code"] == "dataset_not_found"
        status, error = await ada.call("PUT", "/datasets/nope/cases", {"cases": [third]})
        assert status == 404

        (listed,) = (await vera.ok("GET", "/datasets"))["datasets"]
        assert {k: listed[k] for k in ("name", "revision", "case_count", "updated_by")} == {
            "name": "faq",
            "revision": 3,
            "case_count": 1,
            "updated_by": "ada",
        }
        assert listed["updated_at"].endswith("Z")

        status, error = await ada.call("PUT", "/datasets/faq/cases", {"cases": [], "by": "eve"})
        assert status == 400 and error["error"]["code"] == "by_not_trusted"


@pytest.mark.parametrize(
    ("cases", "code", "words"),
    [
        (
            [case("fresh", "hi"), {"name": "b", "checks": {"smells_ok": True}}],
            "invalid_case",
            "cases[1] ('b'): unknown check 'smells_ok'",
        ),
        (
            [{"name": "s", "checks": {"json_schema": {"type": "object", "minimun": 1}}}],
            "invalid_case",
            "cases[0] ('s'): check 'json_schema': unknown keyword 'minimun'",
        ),
        ([{"messages": "hi"}], "invalid_case", "cases[0]: 'messages' must be a list"),
        ([{"checks": {"regex": "("}}], "invalid_case", "bad regex"),
        ([PASSING[0], PASSING[0]], "duplicate_case", "a case named 'greeting' already"),
        ([PASSING[1]], "duplicate_case", "a case named 'exact' already"),  # in the dataset
    ],
)
async def test_a_bad_case_is_refused_naming_the_case_and_field(
    gateway_factory: GatewayFactory,
    upstream: Upstream,
    cases: list[object],
    code: str,
    words: str,
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    async with aiohttp.ClientSession() as session:
        admin = Caller(gw, session)
        await admin.ok("POST", "/datasets", {"name": "faq", "cases": PASSING}, status=201)
        status, error = await admin.call("POST", "/datasets/faq/cases", {"cases": cases})
        assert status == 400, error
        assert error["error"]["code"] == code and words in error["error"]["message"]
        assert (await admin.ok("GET", "/datasets/faq"))["revision"] == 1  # nothing saved
        if code == "invalid_case":
            status, error = await admin.call("POST", "/datasets", {"name": "x", "cases": cases})
            assert status == 400 and words in error["error"]["message"]
        status, error = await admin.call("POST", "/datasets", {"name": "no spaces"})
        assert status == 400 and error["error"]["code"] == "invalid_name"


async def test_a_case_is_made_from_a_real_captured_request(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url, "enabled = true\n"))
    async with gw.client() as client:
        answer = await client.chat.completions.create(
            model="prompt:support",
            messages=[{"role": "user", "content": "Where is parcel 42?"}],
            max_tokens=64,
            extra_body={"prompt_variables": ACME},
            extra_headers={"X-Request-Id": "req-42"},
        )
    await gw.app[CAPTURE].flush()
    async with aiohttp.ClientSession() as session:
        admin = Caller(gw, session)
        await admin.ok("POST", "/datasets", {"name": "prod"}, status=201)
        body = {"from_request": "req-42", "checks": {"contains": "parcel 42"}}
        saved = await admin.ok("POST", "/datasets/prod/cases", body)
        assert saved["revision"] == 2
        (made,) = saved["cases"]
        assert made == {
            "name": "req-req-42",
            "variables": ACME,
            "messages": [{"role": "user", "content": "Where is parcel 42?"}],
            "params": {"max_tokens": 64},
            "checks": {"contains": "parcel 42"},
            "from_request": "req-42",
            "expected": answer.choices[0].message.content,
        }
        named = {"from_request": "req-42", "name": "parcel", "checks": {}}
        saved = await admin.ok("POST", "/datasets/prod/cases", named)
        assert [c["name"] for c in saved["cases"]] == ["req-req-42", "parcel"]

        status, error = await admin.call(
            "POST", "/datasets/prod/cases", {"from_request": "nope", "checks": {}}
        )
        assert status == 404 and error["error"]["code"] == "capture_not_found"
        status, error = await admin.call(
            "POST", "/datasets/prod/cases", {"from_request": "req-42", "checks": {"nope": 1}}
        )
        assert status == 400 and "unknown check 'nope'" in error["error"]["message"]
        status, error = await admin.call(
            "POST", "/datasets/prod/cases", {"from_request": "req-42", "cases": []}
        )
        assert status == 400 and error["error"]["code"] == "invalid_body"
        assert (await admin.ok("GET", "/datasets/prod"))["revision"] == 3
