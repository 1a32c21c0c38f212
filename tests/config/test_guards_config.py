"""`[guards.NAME]`, `guards = [...]` on routes and prompts, and `[review]`: read,
checked, and shown by `/admin/config` without the webhook's or callback's URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.admin.config import redacted
from gateway.appkeys import RUNTIME
from gateway.config.loader import load_config
from gateway.config.source import ConfigError
from tests.eval_support import ADMIN, run_cli

WriteConfig = Callable[..., Path]
BASE = """
[providers.mock]
type = "mock"
"""
GUARDED = """
[guards.safe]
regex_deny = ["(?i)password"]
regex_require = ["\\\\S"]
max_chars = 2000
json_schema = { type = "object", required = ["answer"] }
webhook = { url = "https://checks.example/h?token=hook-secret", timeout_s = 1.5, on_error = "pass" }
on_fail = "retry"
retries = 2

[guards.review]
max_chars = 10
on_fail = "hold"

[models.demo]
targets = [{ provider = "mock", model = "demo" }]
guards = ["safe"]

[prompts.support]
model = "demo"
messages = [{ role = "system", content = "Hi" }]
guards = ["review", "safe"]
fallback_version = "v1"

[review]
timeout_s = 3600
on_timeout = "release"
callback_url = "https://hooks.example/decided?key=callback-secret"
"""


def test_guards_attach_to_routes_and_prompts(write_config: WriteConfig) -> None:
    config = load_config(write_config(BASE + GUARDED))
    safe = config.guards["safe"]
    assert safe.on_fail == "retry" and safe.retries == 2 and safe.max_chars == 2000
    assert safe.regex_deny == ("(?i)password",) and safe.json_schema["required"] == ["answer"]
    assert safe.webhook is not None and safe.webhook.on_error == "pass"
    assert config.models["demo"].guards == ("safe",)
    assert config.prompts["support"].guards == ("review", "safe")
    assert config.prompts["support"].fallback_version == "v1"
    assert config.review.timeout_s == 3600 and config.review.on_timeout == "release"
    shown = str(redacted(config))
    assert "hook-secret" not in shown and "callback-secret" not in shown
    assert "checks.example" not in shown


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (
            '[models.demo]\ntargets = [{ provider = "mock", model = "demo" }]\nguards = ["nope"]\n',
            "models.demo.guards[0]",
            "unknown guard",
        ),
        ('[guards.g]\nmax_chars = 5\non_fail = "shrug"\n', "guards.g.on_fail", "must be one of"),
        ('[guards.g]\nregex_deny = ["(unclosed"]\n', "guards.g.regex_deny[0]", "bad regular"),
        ('[guards.g]\non_fail = "block"\n', "guards.g", "needs a check"),
        ('[guards.g]\nwebhook = { url = "ftp://x" }\n', "guards.g.webhook.url", "http"),
        ("[guards.g]\njson_schema = { type = 5 }\n", "guards.g.json_schema", "2020-12"),
        ("[guards.g]\nmax_chars = 5\nretry = 2\n", "guards.g.retry", "unknown key"),
        ('[review]\non_timeout = "maybe"\n', "review.on_timeout", "reject"),
    ],
)
def test_bad_guard_config_is_a_load_error_naming_the_key(
    write_config: WriteConfig, text: str, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write_config(BASE + text))
    assert key in str(error.value) and message in str(error.value)


async def test_an_unknown_schema_keyword_is_refused_at_start_and_on_reload(
    write_config: WriteConfig, gateway_factory: Any
) -> None:
    typo = '[guards.g]\njson_schema = { type = "object", minProperty = 1 }\n'
    path = write_config(BASE + typo, name="typo.toml")
    code, _, err = await run_cli("check-config", str(path))
    assert code == 1 and "guards.g.json_schema" in err and "minProperty" in err

    gw = await gateway_factory(f'[server]\nadmin_token = "{ADMIN}"\n' + BASE)
    write_config(f'[server]\nadmin_token = "{ADMIN}"\n' + BASE + typo)  # the one it serves
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/admin/reload"), headers={"Authorization": f"Bearer {ADMIN}"}
        ) as response,
    ):
        body = await response.json()
    assert response.status == 400 and "minProperty" in orjson.dumps(body).decode()
    assert gw.app[RUNTIME].current.config.guards == {}
