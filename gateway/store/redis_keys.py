"""The prompt store's Redis key names, and how values are written and read back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Keys:
    """Key names. Per-prompt keys hold the name in `{...}`: one Cluster slot each."""

    prefix: str

    def _prompt(self, name: str, what: str) -> str:
        return f"{self.prefix}prompt:{{{name}}}:{what}"

    def versions(self, name: str) -> str:  # HASH vN -> version JSON
        return self._prompt(name, "versions")

    def hashes(self, name: str) -> str:  # HASH content hash -> vN
        return self._prompt(name, "hashes")

    def routing(self, name: str) -> str:  # STRING routing JSON
        return self._prompt(name, "routing")

    def history(self, name: str) -> str:  # LIST of history entry JSON, newest first
        return self._prompt(name, "history")

    def labels(self, name: str) -> str:  # HASH label -> vN
        return self._prompt(name, "labels")

    def docs(self, name: str) -> str:  # STRING JSON: description, owner, …
        return self._prompt(name, "docs")

    @property
    def prompts(self) -> str:  # SET of prompt names
        return f"{self.prefix}prompts"

    @property
    def epoch(self) -> str:  # INCR on every write
        return f"{self.prefix}epoch"

    @property
    def changes(self) -> str:  # pub/sub channel: the changed prompt's name
        return f"{self.prefix}changes"

    @property
    def dataset(self) -> str:
        """STRING, a random id written when a gateway first seeds this Redis (and when
        one restores it): only a Redis that lost its data is without it."""
        return f"{self.prefix}dataset"


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)


def text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
