"""One suite for every store (embedded, Redis, one-node Redis Cluster), then what only
Redis has: concurrent writers on separate clients, the key layout, change following,
and outages of a real `redis-server`."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TypeVar, cast

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from gateway.config.loader import PromptConfig, RedisConfig
from gateway.errors import DomainError, api_error
from gateway.prompts.history import ROUTING_KINDS, HistoryEntry
from gateway.prompts.versions import PromptContent, Routing, Shadow
from gateway.store.base import Store, seed_prompts
from gateway.store.errors import StoreUnavailable
from gateway.store.follower import PromptsHolder
from gateway.store.memory import MemoryStore
from gateway.store.prompt_records import decode_entry, decode_version
from gateway.store.redis import RedisStore
from gateway.store.redis_connect import SentinelTarget, parse_sentinel_url
from gateway.telemetry.metrics import Metrics
from tests.redis_fixtures import RedisServer, make_redis_config

T = TypeVar("T")
PATIENCE_S = 5.0  # generous: a bound that proves "does not hang", not a timing claim


def content(text: str = "You answer for {{product}}.", **params: object) -> PromptContent:
    return PromptContent("chat", ({"role": "system", "content": text},), params)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    cluster = request.param == "redis-cluster"
    server: RedisServer = request.getfixturevalue(
        "redis_cluster_server" if cluster else "redis_server"
    )
    redis_store = RedisStore.from_config(make_redis_config(server.url, cluster=cluster))
    try:
        yield redis_store
    finally:
        await redis_store.close()


async def approved_versions(store: Store, name: str, *texts: str) -> list[str]:
    ids = []
    for text in texts:
        version, _ = await store.push_version(name, content(text), by="alice")
        await store.approve(name, version.id, by="bob", note="")
        ids.append(version.id)
    return ids


# -- the shared suite -----------------------------------------------------------------


async def test_versions_are_sequential_and_start_as_drafts(store: Store) -> None:
    pushed = [await store.push_version("p", content(f"text {i}"), by="alice") for i in range(3)]
    assert [(v.id, created) for v, created in pushed] == [("v1", True), ("v2", True), ("v3", True)]
    assert all(v.status == "draft" and v.created_by == "alice" for v, _ in pushed)
    other, _ = await store.push_version("q", content("text 0"), by="alice")
    assert other.id == "v1"  # numbered per prompt


async def test_same_content_is_the_same_version(store: Store) -> None:
    first, created = await store.push_version("p", content(temperature=0.2, top_p=1), by="a")
    assert created
    # Equal content built afresh, params in another order: the same hash and version.
    again, created = await store.push_version("p", content(top_p=1, temperature=0.2), by="b")
    assert (again.id, created, again.created_by) == ("v1", False, "a")
    assert again.hash == first.hash == content(temperature=0.2, top_p=1).hash
    assert len(first.hash) == 64
    changed, created = await store.push_version("p", content(temperature=0.3), by="a")
    assert (changed.id, created) == ("v2", True)
    assert changed.hash != first.hash


async def test_a_draft_cannot_get_weight_but_may_be_shadowed(store: Store) -> None:
    (v1,) = await approved_versions(store, "p", "one")
    draft, _ = await store.push_version("p", content("two"), by="alice")
    with pytest.raises(DomainError) as err:
        await store.set_routing("p", Routing({v1: 50, draft.id: 50}), by="bob", reason="")
    assert (api_error(err.value).status, err.value.code) == (409, "draft_version")
    shadowed = Routing({v1: 100, draft.id: 0}, Shadow((draft.id,), 0.25))
    change = await store.set_routing("p", shadowed, by="bob", reason="shadow the draft")
    assert change.routing_after == shadowed
    state = await store.get_prompt("p")
    assert state is not None and state.routing == shadowed


@pytest.mark.parametrize(
    ("weights", "shadow", "code"),
    [
        ({"v1": 60, "v2": 30}, (), "bad_weights"),
        ({"v1": 100, "v2": 10}, (), "bad_weights"),
        ({"v1": 50, "v9": 50}, (), "unknown_version"),
        ({"v1": 100}, ("v7",), "unknown_version"),
    ],
)
async def test_bad_routing_is_400_and_changes_nothing(
    store: Store, weights: dict[str, int], shadow: tuple[str, ...], code: str
) -> None:
    await approved_versions(store, "p", "one", "two")
    await store.set_routing("p", Routing({"v1": 100}), by="bob", reason="start")
    with pytest.raises(DomainError) as err:
        await store.set_routing("p", Routing(weights, Shadow(shadow, 1.0)), by="x", reason="")
    assert (api_error(err.value).status, err.value.code) == (400, code)
    state = await store.get_prompt("p")
    assert state is not None and state.routing == Routing({"v1": 100})
    assert len(await routing_history(store, "p")) == 1


async def routing_history(store: Store, name: str) -> list[HistoryEntry]:
    return [e for e in await store.history(name, 1000) if e.kind in ROUTING_KINDS]


async def test_unknown_prompts_and_versions(store: Store) -> None:
    assert await store.get_prompt("nope") is None
    await store.push_version("p", content(), by="alice")
    for call in (
        store.approve("nope", "v1", by="bob", note=""),
        store.approve("p", "v2", by="bob", note=""),
        store.set_routing("nope", Routing({"v1": 100}), by="bob", reason=""),
        store.rollback("nope", by="bob"),
        store.history("nope"),
    ):
        with pytest.raises(DomainError) as err:
            await call
        assert api_error(err.value).status == 404


async def test_approval_records_who_when_and_why(store: Store) -> None:
    await store.push_version("p", content(), by="alice")
    before = time.time()
    approved = await store.approve("p", "v1", by="bob", note="suite passed")
    assert approved.status == "approved"
    (approval,) = approved.approvals
    assert (approved.approved_by, approval.note) == ("bob", "suite passed")
    assert before <= approval.at <= time.time()
    again = await store.approve("p", "v1", by="carol", note="again")
    assert again == approved  # the first approval stands
    state = await store.get_prompt("p")
    assert state is not None and state.versions["v1"] == approved


async def test_routing_changes_are_recorded_newest_first(store: Store) -> None:
    await approved_versions(store, "p", "one", "two")
    first, second = Routing({"v1": 100}), Routing({"v1": 90, "v2": 10})
    before = time.time()
    await store.set_routing("p", first, by="alice", reason="launch")
    await store.set_routing("p", second, by="bob", reason="canary")
    history = await routing_history(store, "p")
    assert [(c.by, c.reason, c.routing_before, c.routing_after) for c in history] == [
        ("bob", "canary", first, second),
        ("alice", "launch", None, first),
    ]
    assert time.time() >= history[0].at >= history[1].at >= before
    assert [c.reason for c in await store.history("p", limit=1)] == ["canary"]


async def test_rollback_restores_the_previous_routing_and_is_recorded(store: Store) -> None:
    await approved_versions(store, "p", "one", "two")
    first, second = Routing({"v1": 100}), Routing({"v1": 50, "v2": 50})
    await store.set_routing("p", first, by="alice", reason="launch")
    await store.set_routing("p", second, by="alice", reason="canary")
    change = await store.rollback("p", by="oncall")
    assert (change.by, change.routing_before, change.routing_after) == ("oncall", second, first)
    state = await store.get_prompt("p")
    assert state is not None and state.routing == first
    history = await routing_history(store, "p")
    assert [c.routing_after for c in history] == [first, second, first]
    assert history[0].reason.startswith("rollback")


async def test_rollback_without_an_earlier_routing_is_409(store: Store) -> None:
    (v1,) = await approved_versions(store, "p", "one")
    with pytest.raises(DomainError) as err:
        await store.rollback("p", by="oncall")
    assert (api_error(err.value).status, err.value.code) == (409, "nothing_to_roll_back")
    await store.set_routing("p", Routing({v1: 100}), by="alice", reason="launch")
    with pytest.raises(DomainError) as err:  # the only change had no "before"
        await store.rollback("p", by="oncall")
    assert api_error(err.value).status == 409


async def test_config_prompts_are_seeded_then_arrive_as_drafts(store: Store) -> None:
    prompt = PromptConfig("support", "chat", ({"role": "system", "content": "Hi."},), {})
    await seed_prompts(store, {"support": prompt}, {})
    await seed_prompts(store, {"support": prompt}, {})  # a reload with no change
    state = await store.get_prompt("support")
    assert state is not None
    assert list(state.versions) == ["v1"] and state.versions["v1"].status == "approved"
    assert state.routing == Routing({"v1": 100})
    changed = replace(prompt, params={"temperature": 0.1})
    await seed_prompts(store, {"support": changed}, {})
    state = await store.get_prompt("support")
    assert state is not None
    assert state.versions["v2"].status == "draft"
    assert state.routing == Routing({"v1": 100})
    assert len(await routing_history(store, "support")) == 1


async def test_load_all_returns_everything(store: Store) -> None:
    assert await store.load_all() == {}
    await approved_versions(store, "a", "one", "two")
    await store.set_routing("a", Routing({"v2": 100}, Shadow(("v1",), 0.5)), by="x", reason="")
    await store.push_version("b", content(), by="alice")
    states = await store.load_all()
    assert sorted(states) == ["a", "b"]
    assert states["a"] == await store.get_prompt("a")
    assert states["a"].routing == Routing({"v2": 100}, Shadow(("v1",), 0.5))
    assert sorted(states["a"].versions) == ["v1", "v2"]
    assert states["a"].versions["v1"].content == content("one")
    assert states["b"].routing is None and states["b"].versions["v1"].status == "draft"


# -- Redis only: concurrent writers -----------------------------------------------------


@pytest.fixture
async def clients(redis_config: RedisConfig) -> AsyncIterator[list[RedisStore]]:
    """Four clients of one Redis, as four replicas would be. Tens of optimistic
    transactions at once queue for connections: no outage is tested here, so a loaded
    machine gets seconds, not the outage tests' half second, before a command gives up."""
    patient = replace(redis_config, socket_timeout_s=5.0, connect_timeout_s=5.0)
    stores = [RedisStore.from_config(patient) for _ in range(4)]
    try:
        yield stores
    finally:
        for s in stores:
            await s.close()


async def all_of(calls: list[Awaitable[T]]) -> list[T]:
    """Run at once; every one must succeed (none left running if one fails)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return cast(list[T], results)


async def test_concurrent_pushes_never_share_a_version_id(clients: list[RedisStore]) -> None:
    contents = [content(f"text {i}") for i in range(16)]
    pushed = await all_of([s.push_version("p", c, by="x") for c in contents for s in clients])
    # Each content pushed by every client at once: one version each, numbered v1..v16.
    by_hash: dict[str, set[str]] = {}
    for version, _ in pushed:
        by_hash.setdefault(version.hash, set()).add(version.id)
    assert all(len(ids) == 1 for ids in by_hash.values())
    assert sum(created for _, created in pushed) == 16
    state = await clients[0].get_prompt("p")
    assert state is not None
    assert sorted(state.versions, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, 17)]
    for c in contents:
        (version_id,) = by_hash[c.hash]
        assert state.versions[version_id].content == c


async def test_concurrent_routing_changes_keep_one_unbroken_history(
    clients: list[RedisStore],
) -> None:
    a = clients[0]
    await approved_versions(a, "p", "one", "two")
    await a.set_routing("p", Routing({"v1": 100}), by="x", reason="start")
    writes: list[Awaitable[HistoryEntry]] = []
    for i in range(32):
        s = clients[i % len(clients)]
        writes.append(s.set_routing("p", Routing({"v1": 100 - i, "v2": i}), by="x", reason=str(i)))
        if i % 5 == 4:
            writes.append(s.rollback("p", by="y"))
    await all_of(writes)
    history = await routing_history(a, "p")
    assert len(history) == 1 + len(writes)
    # Each change starts from where the one before it ended: none lost, none half-done.
    for newer, older in itertools.pairwise(history):
        assert newer.routing_before == older.routing_after
    state = await clients[-1].get_prompt("p")
    assert state is not None and state.routing == history[0].routing_after
    assert {c.reason for c in history if c.by == "x"} == {"start", *map(str, range(32))}


# -- Redis only: where things live ------------------------------------------------------


async def test_every_key_is_under_the_prefix_and_a_prompt_has_one_slot(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    for name in ("support", "odd:name/with}brace"):
        await approved_versions(redis_store, name, "one", "two")
        await redis_store.set_routing(name, Routing({"v1": 100}), by="x", reason="")
        await redis_store.set_routing(name, Routing({"v2": 100}), by="x", reason="")
        await redis_store.rollback(name, by="x")
    raw = Redis.from_url(redis_server.url)
    try:
        keys = sorted([k.decode() async for k in raw.scan_iter("*")])
    finally:
        await raw.aclose()
    assert keys and all(k.startswith("gwtest:") for k in keys)
    assert "gwtest:prompts" in keys and "gwtest:epoch" in keys
    for name in ("support", "odd:name/with}brace"):
        mine = [k for k in keys if k.startswith(f"gwtest:prompt:{{{name}}}:")]
        assert len(mine) == 4  # versions, hashes, routing, history
        assert len({key_slot(k.encode()) for k in mine}) == 1
    other = RedisStore.from_config(replace(make_redis_config(redis_server.url), prefix="other:"))
    try:
        assert await other.load_all() == {}
    finally:
        await other.close()


# -- Redis only: following changes ------------------------------------------------------


class Changes:
    """`on_change` for `watch`: wakes whoever waits for the next call."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def __call__(self) -> None:
        self._event.set()

    async def next(self) -> None:
        await asyncio.wait_for(self._event.wait(), PATIENCE_S)
        self._event.clear()


async def watching(store: RedisStore, changes: Changes) -> asyncio.Task[None]:
    task = asyncio.create_task(store.watch(changes))
    await changes.next()  # connecting is a full reload
    return task


async def stop_watching(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("cluster", [False, True], ids=["pubsub", "cluster-poll"])
async def test_watch_sees_a_write_through_another_client(
    request: pytest.FixtureRequest, cluster: bool
) -> None:
    server: RedisServer = request.getfixturevalue(
        "redis_cluster_server" if cluster else "redis_server"
    )
    cfg = make_redis_config(server.url, cluster=cluster)
    if not cluster:  # no poll within the test's patience: only the notice can be in time
        cfg = replace(cfg, poll_interval_s=60.0)
    watcher, writer = RedisStore.from_config(cfg), RedisStore.from_config(cfg)
    changes = Changes()
    task = await watching(watcher, changes)
    try:
        await writer.push_version("p", content(), by="alice")
        await changes.next()
        await writer.approve("p", "v1", by="bob", note="")
        await changes.next()
    finally:
        await stop_watching(task)
        await watcher.close()
        await writer.close()


async def test_watch_polls_the_epoch_for_lost_notices(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    changes = Changes()
    task = await watching(redis_store, changes)
    raw = Redis.from_url(redis_server.url)
    try:
        await raw.incr("gwtest:epoch")  # a write whose notice was lost
        await changes.next()
    finally:
        await raw.aclose()
        await stop_watching(task)


async def test_watch_resyncs_periodically(redis_config: RedisConfig) -> None:
    store = RedisStore.from_config(replace(redis_config, resync_interval_s=0.05))
    changes = Changes()
    task = await watching(store, changes)
    try:
        await changes.next()
        await changes.next()
    finally:
        await stop_watching(task)
        await store.close()


# -- Redis only: outages ----------------------------------------------------------------


async def assert_unavailable(store: RedisStore, *secrets: str) -> None:
    """Every admin call answers 503 at once (well within PATIENCE_S), naming no secret;
    `load_all` raises Redis's own error; `ping` says no."""
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.push_version("p", content("new"), by="x"),
        lambda: store.set_routing("p", Routing({"v1": 100}), by="x", reason=""),
        lambda: store.get_prompt("p"),
    ]
    async with asyncio.timeout(PATIENCE_S):
        for call in calls:
            with pytest.raises(StoreUnavailable) as err:
                await call()
            assert api_error(err.value).status == 503
            assert not any(secret in str(err.value) for secret in secrets)
        with pytest.raises(RedisError):
            await store.load_all()
        assert await store.ping() is False


async def test_a_stopped_redis_fails_fast_without_secrets(redis_server: RedisServer) -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{redis_server.port}/0"
    store = RedisStore.from_config(make_redis_config(url))
    redis_server.stop()
    try:
        await assert_unavailable(store, "s3cret-pw", str(redis_server.port))
    finally:
        await store.close()


async def test_a_frozen_redis_fails_fast(redis_server: RedisServer) -> None:
    store = RedisStore.from_config(make_redis_config(redis_server.url, timeout_s=0.25))
    try:
        await approved_versions(store, "p", "one")  # pooled connections exist
        assert await store.ping()
        redis_server.freeze()
        try:
            await assert_unavailable(store)
        finally:
            redis_server.thaw()
        assert await store.ping()
    finally:
        await store.close()


async def follow(store: RedisStore, changes: Changes, failures: asyncio.Queue[Exception]) -> None:
    """What `PromptsHolder.follow` does: watch again after a failure and a pause."""
    while True:
        try:
            await store.watch(changes)
        except Exception as exc:
            failures.put_nowait(exc)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("outage", ["freeze", "restart"])
async def test_watch_resumes_when_redis_returns(
    redis_store: RedisStore, redis_server: RedisServer, outage: str
) -> None:
    changes, failures = Changes(), asyncio.Queue[Exception]()
    task = asyncio.create_task(follow(redis_store, changes, failures))
    try:
        await changes.next()
        redis_server.freeze() if outage == "freeze" else redis_server.stop()
        first = await asyncio.wait_for(failures.get(), PATIENCE_S)
        assert isinstance(first, RedisError)
        redis_server.thaw() if outage == "freeze" else redis_server.start()
        await changes.next()  # reconnected: a full reload, so the holder marks it up
        writer = RedisStore.from_config(make_redis_config(redis_server.url))
        try:
            await writer.push_version("p", content(), by="alice")
        finally:
            await writer.close()
        await changes.next()  # and it follows changes again
    finally:
        await stop_watching(task)


async def eventually(condition: Callable[[], bool]) -> None:
    """For state with no event to await (the holder's): check every 10 ms."""
    async with asyncio.timeout(PATIENCE_S):
        while not condition():  # noqa: ASYNC110 - the holder has no event to await
            await asyncio.sleep(0.01)


def live_weights(holder: PromptsHolder) -> Mapping[str, int] | None:
    entry = holder.current.prompts.get("p")
    return entry.weights if entry else None


async def test_the_holder_keeps_its_snapshot_through_an_outage(redis_server: RedisServer) -> None:
    store = RedisStore.from_config(make_redis_config(redis_server.url, timeout_s=0.25))
    writer = RedisStore.from_config(make_redis_config(redis_server.url))
    holder = PromptsHolder(store, Metrics())
    await holder.refresh()
    task = asyncio.create_task(holder.follow())
    try:
        await approved_versions(writer, "p", "one")
        await writer.set_routing("p", Routing({"v1": 100}), by="x", reason="")
        await eventually(lambda: live_weights(holder) == {"v1": 100})
        redis_server.freeze()
        await eventually(lambda: not holder.store_up)
        assert live_weights(holder) == {"v1": 100}  # still serving the last snapshot
        redis_server.thaw()
        await eventually(lambda: holder.store_up)
    finally:
        await stop_watching(task)
        await store.close()
        await writer.close()


# -- Redis only: connecting -------------------------------------------------------------


async def test_a_sentinel_url_reaches_the_master(
    redis_sentinel: RedisServer, redis_server: RedisServer
) -> None:
    via_sentinel = RedisStore.from_config(make_redis_config(redis_sentinel.url))
    direct = RedisStore.from_config(make_redis_config(redis_server.url))
    changes = Changes()
    task = await watching(via_sentinel, changes)
    try:
        await via_sentinel.push_version("p", content(), by="alice")
        await changes.next()
        assert list(await direct.load_all()) == ["p"]
        await direct.approve("p", "v1", by="bob", note="")
        await changes.next()
    finally:
        await stop_watching(task)
        await via_sentinel.close()
        await direct.close()


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (
            "redis+sentinel://s1:26380,s2/main",
            SentinelTarget((("s1", 26380), ("s2", 26379)), "main"),
        ),
        (
            "redis+sentinel://:p%40ss@[::1]:5000/main/3",
            SentinelTarget((("::1", 5000),), "main", 3, None, "p@ss"),
        ),
        (
            "redis+sentinel://user:pw@s1:26379/main",
            SentinelTarget((("s1", 26379),), "main", 0, "user", "pw"),
        ),
    ],
)
def test_sentinel_urls(url: str, target: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == target


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://:secret@s1:26379",  # no service
        "redis+sentinel://:secret@s1:26379/main/db",
        "redis+sentinel://:secret@s1:port/main",
        "redis+sentinel:///main",
    ],
)
def test_bad_sentinel_urls_never_repeat_the_password(url: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_sentinel_url(url)
    assert "secret" not in str(err.value)


def test_records_written_before_history_kinds_and_approvals_still_decode() -> None:
    """A Redis written by the previous release: a routing change without id or kind, a
    version approved once with `approved_by`."""
    old_change = b'{"at": 1700000000.5, "by": "alice", "reason": "canary", "before": null,'
    old_change += (
        b' "after": {"weights": {"v1": 100}, "shadow": {"versions": [], "sample_rate": 0}}}'
    )
    entry = decode_entry(old_change)
    assert (entry.kind, entry.by, entry.reason) == ("routing", "alice", "canary")
    assert entry.id and entry.routing_after == Routing({"v1": 100})
    old_version = (
        b'{"version": "v1", "hash": "h", "status": "approved", "model": "chat",'
        b' "messages": [], "created_by": "ann", "approved_by": "bob",'
        b' "approved_at": 1700000001.0, "approval_note": "ok"}'
    )
    version = decode_version(old_version)
    assert version.approved_by == "bob"
    assert [(a.by, a.at, a.note) for a in version.approvals] == [("bob", 1700000001.0, "ok")]
