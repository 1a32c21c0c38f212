"""The in-memory routing snapshot every request reads: what the store holds, turned
into pickers, swapped whole when the store changes (see gateway.store.follower)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config.loader import PromptConfig
from gateway.prompts.versions import (
    PromptState,
    PromptVersion,
    Routing,
    Shadow,
    VersionPicker,
)


@dataclass(frozen=True)
class PromptEntry:
    name: str
    versions: Mapping[str, PromptVersion]
    picker: VersionPicker | None  # None: no routing yet, only pinned versions serve
    shadow: Shadow
    weights: Mapping[str, int]
    labels: Mapping[str, str] = field(default_factory=dict)  # label -> vN
    docs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptsSnapshot:
    prompts: Mapping[str, PromptEntry] = field(default_factory=dict)
    loaded_at: float = 0.0

    @classmethod
    def from_states(cls, states: Mapping[str, PromptState]) -> PromptsSnapshot:
        entries = {}
        for name, state in states.items():
            routing = state.routing
            entries[name] = PromptEntry(
                name=name,
                versions=state.versions,
                picker=VersionPicker.from_weights(name, routing.weights) if routing else None,
                shadow=routing.shadow if routing else Shadow(),
                weights=routing.weights if routing else {},
                labels=state.labels,
                docs=state.docs,
            )
        return cls(entries, time.time())

    def states(self) -> dict[str, PromptState]:
        """What the store held when this snapshot was read: every replica's snapshot
        can write it back if the store loses it."""
        return {
            name: PromptState(
                name,
                e.versions,
                Routing(dict(e.weights), e.shadow) if e.picker is not None else None,
                e.labels,
                e.docs,
            )
            for name, e in self.prompts.items()
        }

    @classmethod
    def from_config(cls, prompts: Mapping[str, PromptConfig]) -> PromptsSnapshot:
        """What the config file alone says: each prompt's content as an approved v1 with
        all the weight. Served while the store has never been reached."""
        states = {}
        for name, prompt in prompts.items():
            content = prompt.content()
            version = PromptVersion("v1", content.hash, content, status="approved")
            docs = prompt.docs.to_json()
            states[name] = PromptState(name, {"v1": version}, Routing({"v1": 100}), {}, docs)
        return cls.from_states(states)
