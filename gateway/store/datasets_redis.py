"""Datasets and their runs in Redis, on the store's client and prefix.

- `{prefix}datasets:{NAME}:head`: STRING, the dataset's current revision without its
  cases (gateway.store.datasets.DatasetHead), as JSON.
- `{prefix}datasets:{NAME}:rev:{N}`: STRING, revision N with its cases, as JSON; the
  last `REVISIONS_KEPT` are kept. Both are written together by one compare-and-set on
  the head's revision (a Lua script).
- `{prefix}datasets:names`: SET of dataset names.
- `{prefix}prompt:{NAME}:runs`: HASH, run id -> the run with its cases' outcomes.
- `{prefix}prompt:{NAME}:run-list`: LIST of run summaries, newest first; a script
  trims it to `RUNS_KEPT` and drops the trimmed runs from the hash.

`{NAME}` is a Cluster hash tag: each dataset's keys, and each prompt's, share a slot."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from gateway.store.dataset_runs import (
    RUNS_KEPT,
    DatasetRun,
    RunSummary,
    decode_run,
    decode_summary,
    encode_run,
)
from gateway.store.datasets import (
    REVISIONS_KEPT,
    Case,
    DatasetHead,
    DatasetRevision,
    check_expected,
    next_revision,
)
from gateway.store.redis_connect import RedisClient, unavailable_on_error

# KEYS: head, the new revision, the revision that falls out. ARGV: the revision the
# writer read, the new head, the new revision. Returns -1 when written, else the
# revision the store holds.
_SAVE_IF_REVISION = """
local head = redis.call('GET', KEYS[1])
local current = 0
if head then current = cjson.decode(head)['revision'] end
if current ~= tonumber(ARGV[1]) then return current end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[3])
return -1
"""
# KEYS: the run list, the runs hash. ARGV: run id, summary, run, how many to keep.
_ADD_RUN = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('LPUSH', KEYS[1], ARGV[2])
while redis.call('LLEN', KEYS[1]) > tonumber(ARGV[4]) do
  local old = redis.call('RPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], cjson.decode(old)['id'])
end
return 1
"""


class RedisDatasets:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self.prefix = prefix
        self._save = client.register_script(_SAVE_IF_REVISION)

    def head_key(self, name: str) -> str:
        return f"{self.prefix}datasets:{{{name}}}:head"

    def revision_key(self, name: str, revision: int) -> str:
        return f"{self.prefix}datasets:{{{name}}}:rev:{revision}"

    @property
    def names_key(self) -> str:
        return f"{self.prefix}datasets:names"

    async def heads(self) -> list[DatasetHead]:
        with unavailable_on_error():
            names = sorted(_text(n) for n in await self._client.smembers(self.names_key))
            if not names:
                return []
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.get(self.head_key(name))
            replies = await pipe.execute()
        return [_head(raw) for raw in replies if raw]

    async def head(self, name: str) -> DatasetHead | None:
        with unavailable_on_error():
            raw = await self._client.get(self.head_key(name))
        return _head(raw) if raw else None

    async def get(self, name: str, revision: int | None = None) -> DatasetRevision | None:
        if revision is None:
            head = await self.head(name)
            if head is None:
                return None
            revision = head.revision
        with unavailable_on_error():
            raw = await self._client.get(self.revision_key(name, revision))
        return msgspec.json.decode(raw, type=DatasetRevision) if raw else None

    async def save(
        self,
        name: str,
        cases: Sequence[Case],
        by: str,
        expect: int,
        description: str | None = None,
    ) -> DatasetRevision:
        read = await self.head(name)
        head, revision = next_revision(read, name, cases, by, expect, description)
        keys = [
            self.head_key(name),
            self.revision_key(name, revision.revision),
            self.revision_key(name, revision.revision - REVISIONS_KEPT),
        ]
        args: list[bytes | str | int] = [
            expect,
            msgspec.json.encode(head),
            msgspec.json.encode(revision),
        ]
        with unavailable_on_error():
            found = int(await self._save(keys=keys, args=args))
            if found != -1:  # changed since it was read
                check_expected(name, found, expect)
            await self._client.sadd(self.names_key, name)
        return revision


class RedisDatasetRuns:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self.prefix = prefix
        self._add = client.register_script(_ADD_RUN)

    def runs_key(self, prompt: str) -> str:
        return f"{self.prefix}prompt:{{{prompt}}}:runs"

    def list_key(self, prompt: str) -> str:
        return f"{self.prefix}prompt:{{{prompt}}}:run-list"

    async def add(self, run: DatasetRun) -> None:
        keys = [self.list_key(run.prompt), self.runs_key(run.prompt)]
        args: list[bytes | str | int] = [
            run.id,
            msgspec.json.encode(run.summary()),
            encode_run(run),
            RUNS_KEPT,
        ]
        with unavailable_on_error():
            await self._add(keys=keys, args=args)

    async def summaries(self, prompt: str) -> list[RunSummary]:
        with unavailable_on_error():
            raw = await self._client.lrange(self.list_key(prompt), 0, -1)
        return [decode_summary(item) for item in raw]

    async def get(self, prompt: str, run_id: str) -> DatasetRun | None:
        with unavailable_on_error():
            raw = await self._client.hget(self.runs_key(prompt), run_id)
        return decode_run(raw) if raw else None


def _head(raw: bytes | str) -> DatasetHead:
    return msgspec.json.decode(raw, type=DatasetHead)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
