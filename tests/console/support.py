"""Shared by the console's tests: a gateway with one identity per role on a fake
upstream (a real HTTP server), and the page driven in Debian's headless Chromium by
Playwright. Screenshots are kept under `test-artifacts/console/`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from playwright.async_api import Page, expect

from tests.conftest import CLIENT_TOKEN, Gateway

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; `make services` installs it
BREAK_GLASS = "console-break-glass"
# name -> (token, roles)
PEOPLE: dict[str, tuple[str, list[str]]] = {
    "ada": ("tok-ada-author", ["author"]),
    "olga": ("tok-olga-operator", ["operator"]),
    "april": ("tok-april-approver", ["approver"]),
    "rita": ("tok-rita-reviewer", ["reviewer", "operator"]),
    "vera": ("tok-vera-viewer", ["viewer"]),
}
V2 = {
    "model": "chat",
    "note": "Warmer greeting",
    "messages": [
        {"role": "system", "content": "You answer for {{product}}, warmly."},
        {"role": "user", "content": "Greet me on behalf of {{product}}, please."},
    ],
}


def token(name: str) -> str:
    return PEOPLE[name][0]


def console_config(upstream_url: str, extra: str = "") -> str:
    """Prompt `support` (v1 from the config) on route `chat`; route `held`, whose
    answers mentioning a secret are held for review; capture on; prices for the mock
    model; the test client key; one identity per role."""
    people = "".join(
        f"""
        [[admins]]
        name = "{name}"
        sha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"
        roles = {roles}
        """
        for name, (secret, roles) in PEOPLE.items()
    )
    return f"""
        [server]
        admin_token = "{BREAK_GLASS}"
        request_timeout_s = 30

        [providers.fake]
        type = "openai"
        base_url = "{upstream_url}"
        api_key = "sk-upstream-secret-value"

        [models.chat]
        targets = [{{ provider = "fake", model = "mock-gpt" }}]

        [pricing."mock-gpt"]
        input_per_mtok = 1.0
        output_per_mtok = 2.0

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"

        [models.held]
        targets = [{{ provider = "fake", model = "mock-gpt" }}]
        guards = ["secrets"]

        [guards.secrets]
        regex_deny = ["secret"]
        on_fail = "hold"

        [capture]
        enabled = true

        [prompts.support]
        model = "chat"
        description = "Answers support questions"
        owner = "support-team"
        messages = [
          {{ role = "system", content = "You answer for {{{{product}}}}." }},
          {{ role = "user", content = "Greet me on behalf of {{{{product}}}}." }},
        ]
        {people}
        {extra}
    """


async def admin_call(
    gw: Gateway, method: str, path: str, body: Any = None, who: str = ""
) -> tuple[int, Any]:
    secret = token(who) if who else BREAK_GLASS
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            gw.url("/admin" + path),
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
        ) as response,
    ):
        return response.status, await response.json()


async def push_v2(gw: Gateway) -> None:
    """v2 of `support`, pushed by the break-glass identity."""
    status, body = await admin_call(gw, "POST", "/prompts/support/versions", V2)
    assert status == 201, body


async def held_request(gw: Gateway, content: str) -> str:
    """A request on route `held` whose answer the guard holds: its review id."""
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="held", messages=[{"role": "user", "content": content}]
        )
    assert raw.status_code == 202, raw.content
    return str(orjson.loads(raw.content)["id"])


async def client_review(gw: Gateway, review_id: str) -> Any:
    """`GET /v1/reviews/{id}` as the client that made the held request."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            gw.url(f"/v1/reviews/{review_id}"),
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        ) as response,
    ):
        assert response.status == 200
        return await response.json()


FORCED_CALL = """async ([path, body]) => {
    const token = sessionStorage.getItem("gateway-console-token");
    const r = await fetch(path, {
        method: "POST", body: JSON.stringify(body),
        headers: {Authorization: `Bearer ${token}`, "Content-Type": "application/json"},
    });
    return [r.status, await r.json()];
}"""


@dataclass
class Console:
    gw: Gateway
    page: Page

    async def open(self) -> None:
        await self.page.goto(self.gw.url("/console"))

    async def sign_in(self, name: str) -> None:
        await self.open()
        await self.page.get_by_label("Admin token").fill(token(name))
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.page.locator("#who-name")).to_have_text(name)

    async def go(self, section: str) -> None:
        await (
            self.page.get_by_role("navigation", name="Sections")
            .get_by_role("link", name=section)
            .click()
        )

    async def forced(self, path: str, body: Any) -> tuple[int, Any]:
        """A call the page would not offer, made from the page with its token."""
        status, answer = await self.page.evaluate(FORCED_CALL, [path, body])
        return status, answer

    async def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path
