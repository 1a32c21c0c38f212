"""`[responses]`: how long the gateway keeps answers of `POST /v1/responses` so that a
follow-up can name one as its `previous_response_id`."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.source import Table


@dataclass(frozen=True)
class ResponsesConfig:
    ttl_s: float = 3600.0  # a stored response can be followed up this long
    # Responses kept in memory by the embedded store (oldest go first); Redis keeps
    # every one for `ttl_s`.
    max_stored: int = 10_000


def responses_section(t: Table) -> ResponsesConfig:
    d = ResponsesConfig()
    cfg = ResponsesConfig(
        ttl_s=t.number("ttl_s", d.ttl_s, minimum=1),
        max_stored=t.integer("max_stored", d.max_stored, minimum=1),
    )
    t.done()
    return cfg
