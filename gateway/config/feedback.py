"""`[feedback]`: the implicit signals a client may send as feedback (`kind =
"implicit"`, `signal = NAME`): what a user did with an answer rather than what they
said about it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config.source import Table

DEFAULT_SIGNALS = ("copied", "edited", "regenerated", "accepted")
SIGNAL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class FeedbackConfig:
    signals: tuple[str, ...] = DEFAULT_SIGNALS


def feedback_section(t: Table) -> FeedbackConfig:
    signals = t.array("signals", list(DEFAULT_SIGNALS))
    for i, signal in enumerate(signals):
        if not isinstance(signal, str) or not SIGNAL_NAME.match(signal):
            raise t.loader.error(
                f"{t.key('signals')}[{i}]", "lowercase letters, digits, '_' and '-' (at most 64)"
            )
    if len(set(signals)) != len(signals):
        raise t.loader.error(t.key("signals"), "a signal is listed twice")
    t.done()
    return FeedbackConfig(signals=tuple(signals))
