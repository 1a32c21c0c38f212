"""Datasets and their runs in both stores, side by side: the embedded one and a real
`redis-server`. Every change of the cases is a new revision, with who and when; old
revisions stay as they were; a stale writer is refused; runs come back newest first,
trimmed to the number kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.errors import Conflict, NotFound
from gateway.store.base import Store
from gateway.store.dataset_runs import RUNS_KEPT, CaseOutcome, DatasetRun
from gateway.store.datasets import REVISIONS_KEPT
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from tests.redis_fixtures import RedisServer, make_redis_config

CASE_A = {"name": "a", "messages": [{"role": "user", "content": "hi"}], "checks": {}}
CASE_B = {"name": "b", "messages": [], "checks": {"contains": "x"}}


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """The embedded store, Redis, and a Redis Cluster (each script's keys in one slot)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    cluster = request.param == "cluster"
    server: RedisServer = request.getfixturevalue(
        "redis_cluster_server" if cluster else "redis_server"
    )
    redis = RedisStore.from_config(make_redis_config(server.url, cluster=cluster))
    try:
        yield redis
    finally:
        await redis.close()


async def test_revisions_are_numbered_kept_and_never_change(store: Store) -> None:
    datasets = store.datasets()
    assert await datasets.heads() == [] and await datasets.get("faq") is None

    first = await datasets.save("faq", [CASE_A], "ada", 0, "questions people ask")
    assert (first.revision, first.by, first.cases) == (1, "ada", (CASE_A,))
    second = await datasets.save("faq", [CASE_A, CASE_B], "bob", 1)
    assert second.revision == 2 and second.description == "questions people ask"
    assert second.at >= first.at

    head = await datasets.head("faq")
    assert head is not None
    assert (head.revision, head.case_count, head.created_by, head.updated_by) == (
        2,
        2,
        "ada",
        "bob",
    )
    assert head.to_json()["updated_at"].endswith("Z")
    assert (await datasets.get("faq")) == second
    assert (await datasets.get("faq", 1)) == first  # revision 1 as it was
    assert await datasets.get("faq", 3) is None

    await datasets.save("other", [], "ada", 0)
    assert [h.name for h in await datasets.heads()] == ["faq", "other"]


async def test_a_stale_or_duplicate_write_is_refused(store: Store) -> None:
    datasets = store.datasets()
    await datasets.save("faq", [CASE_A], "ada", 0)
    with pytest.raises(Conflict) as exists:
        await datasets.save("faq", [CASE_B], "bob", 0)
    assert exists.value.code == "dataset_exists"
    await datasets.save("faq", [CASE_B], "bob", 1)
    with pytest.raises(Conflict) as stale:  # wrote on revision 1, the store is at 2
        await datasets.save("faq", [CASE_A], "ada", 1)
    assert stale.value.code == "concurrent_change"
    with pytest.raises(NotFound):
        await datasets.save("nope", [CASE_A], "ada", 1)
    head = await datasets.head("faq")
    assert head is not None and head.revision == 2
    current = await datasets.get("faq")
    assert current is not None and current.cases == (CASE_B,)


async def test_only_the_last_revisions_are_kept(store: Store) -> None:
    datasets = store.datasets()
    for revision in range(REVISIONS_KEPT + 2):
        await datasets.save("faq", [{**CASE_A, "name": f"r{revision}"}], "ada", revision)
    assert await datasets.get("faq", 1) is None and await datasets.get("faq", 2) is None
    oldest = await datasets.get("faq", 3)
    assert oldest is not None and oldest.cases[0]["name"] == "r2"


def a_run(number: int, version: str = "v1", dataset: str = "faq") -> DatasetRun:
    outcome = CaseOutcome(name="a", passed=True, failures=[], status=200, latency_ms=5.0)
    return DatasetRun(
        id=f"run-{number}",
        prompt="support",
        version=version,
        version_hash="h",
        dataset=dataset,
        dataset_revision=1,
        total=1,
        passed=1,
        failed=0,
        pass_rate=1.0,
        min_pass_rate=1.0,
        verdict="pass",
        latency_p50_ms=5.0,
        latency_p95_ms=5.0,
        cost_usd=None,
        stream=False,
        by="ada",
        started_at="2026-01-01T00:00:00.000Z",
        finished_at="2026-01-01T00:00:01.000Z",
        cases=[outcome],
    )


async def test_runs_come_back_newest_first_and_are_trimmed(store: Store) -> None:
    runs = store.dataset_runs()
    assert await runs.summaries("support") == []
    await runs.add(a_run(1))
    await runs.add(a_run(2, version="v2", dataset="other"))
    summaries = await runs.summaries("support")
    assert [s.id for s in summaries] == ["run-2", "run-1"]
    assert summaries[0].to_json()["dataset"] == "other" and "cases" not in summaries[0].to_json()
    assert await runs.get("support", "run-1") == a_run(1)
    assert await runs.get("support", "nope") is None
    assert await runs.get("elsewhere", "run-1") is None

    for number in range(3, RUNS_KEPT + 3):
        await runs.add(a_run(number))
    summaries = await runs.summaries("support")
    assert len(summaries) == RUNS_KEPT and summaries[0].id == f"run-{RUNS_KEPT + 2}"
    assert await runs.get("support", "run-2") is None  # trimmed with its summary
    assert await runs.get("support", "run-3") is not None
