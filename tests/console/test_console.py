"""The console in a real headless Chromium against a gateway running as a real server:
signing in, diffs, the playground, approvals and rollouts, what each role is shown,
and what the API refuses whatever the page shows. Screenshots go to
`test-artifacts/console/`."""

from __future__ import annotations

import re

import aiohttp
import pytest
from playwright.async_api import expect

from tests.conftest import Gateway, key_sha256
from tests.console.support import BREAK_GLASS, Console, admin_call, push_v2, token

# One loop for the browser and the gateways (see conftest); a browser on a loaded machine.
pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]
ASSETS = ("/console", "/console/console.js", "/console/console.css")


async def test_the_page_ships_in_the_package_with_a_policy_against_inline_and_foreign_code(
    gateway: Gateway,
) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ASSETS:
            async with session.get(gateway.url(path)) as response:
                assert response.status == 200, path
                csp = response.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "default-src 'none'" in csp
                assert "unsafe-inline" not in csp and "http" not in csp
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                text = await response.text()
                # no external origin, no inline script, no secret
                assert "http://" not in text and "https://" not in text, path
                assert "sk-upstream-secret-value" not in text and BREAK_GLASS not in text
        async with session.get(gateway.url("/console")) as response:
            page = await response.text()
        assert response.content_type == "text/html"
        assert re.findall(r"<script[^>]*>", page) == ['<script src="/console/console.js" defer>']
        assert re.search(r"\son[a-z]+\s*=", page) is None  # no inline event handler
        assert "<style" not in page and "style=" not in page
        async with session.get(gateway.url("/console/nothing.js")) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "not_found"


async def test_an_inline_script_does_not_run_in_the_page(console: Console) -> None:
    await console.open()
    ran = await console.page.evaluate(
        """() => new Promise((done) => {
            document.addEventListener("securitypolicyviolation", () => done(window.injected));
            const s = document.createElement("script");
            s.textContent = "window.injected = 'ran'";
            document.head.append(s);
        })"""
    )
    assert ran is None


async def test_signing_in_shows_the_identity_and_keeps_the_token_out_of_the_page(
    console: Console,
) -> None:
    page = console.page
    await console.open()
    await expect(page.get_by_label("Admin token")).to_be_focused()
    await console.shot("sign-in")
    await page.get_by_label("Admin token").fill("not-a-token")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("Admin token required")
    await expect(page.get_by_role("navigation", name="Sections")).to_be_hidden()

    await console.sign_in("rita")
    await expect(page.locator("#who-roles")).to_have_text("operator, reviewer")
    row = page.locator("#prompt-list tbody tr", has_text="support")
    await expect(row).to_contain_text("v1 100%")
    await expect(row).to_contain_text("support-team")
    await console.shot("signed-in")

    # every section, reached with the keyboard; no secret in the page on the way
    nav = page.get_by_role("navigation", name="Sections")
    for section in ("Review queue", "Captures", "Rollouts", "Playground", "Prompts"):
        link = nav.get_by_role("link", name=section)
        await link.focus()
        await page.keyboard.press("Enter")
        await expect(link).to_have_attribute("aria-current", "page")
        await expect(page.get_by_role("heading", level=2)).to_have_text(section)
        html = await page.content()
        for secret in (token("rita"), BREAK_GLASS, "sk-upstream-secret-value"):
            assert secret not in html and key_sha256(secret) not in html
    stored = await page.evaluate("() => [sessionStorage.length, localStorage.length]")
    assert stored == [1, 0]  # the token, in this tab only

    # a reload keeps the sign-in; signing out forgets the token
    await page.reload()
    await expect(page.locator("#who-name")).to_have_text("rita")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Admin token")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.length") == 0


async def test_a_diff_of_two_versions(console: Console) -> None:
    await push_v2(console.gw)
    page = console.page
    await console.sign_in("vera")
    await page.get_by_role("link", name="support").click()
    detail = page.locator("#prompt-detail")
    await expect(detail.get_by_role("heading", name="support")).to_be_visible()
    versions = detail.locator("#versions tbody tr")
    await expect(versions).to_have_count(2)
    await expect(versions.first).to_contain_text("Warmer greeting")
    newest = detail.locator("#history tbody tr").first
    await expect(newest).to_contain_text("pushed")
    await expect(newest).to_contain_text("v2")

    await page.get_by_label("From", exact=True).select_option("v1")
    await page.get_by_label("To", exact=True).select_option("v2")
    await page.get_by_role("button", name="Show diff").click()
    await expect(page.locator("#diff-summary")).to_have_text("v1 → v2: changed messages.")
    diff = page.locator("#diff-output")
    await expect(diff.locator(".removed")).to_have_text(
        ["-  You answer for {{product}}.", "-  Greet me on behalf of {{product}}."]
    )
    await expect(diff.locator(".added")).to_have_text(
        ["+  You answer for {{product}}, warmly.", "+  Greet me on behalf of {{product}}, please."]
    )
    await expect(diff.locator(".file")).to_have_text(["--- support@v1", "+++ support@v2"])
    await console.shot("diff")


async def test_the_playground_runs_one_input_through_two_versions_side_by_side(
    console: Console,
) -> None:
    await push_v2(console.gw)
    page = console.page
    await console.sign_in("olga")
    await console.go("Playground")
    await expect(page.get_by_label("Version A")).to_have_value("v1")
    await expect(page.get_by_label("Version B")).to_have_value("v2")
    await page.get_by_label("Variables (JSON object)").fill('{"product": "Acme"}')
    await page.get_by_role("button", name="Run both").click()
    results = page.locator("#playground-results article")
    await expect(results).to_have_count(2)
    await expect(results.nth(0).get_by_role("heading")).to_have_text("A: v1")
    await expect(results.nth(0).locator("pre")).to_have_text(
        "Mock answer to: Greet me on behalf of Acme."
    )
    await expect(results.nth(1).locator("pre")).to_have_text(
        "Mock answer to: Greet me on behalf of Acme, please."
    )
    for i in (0, 1):
        await expect(results.nth(i)).to_contain_text(re.compile(r"Latency\s*[0-9.]+ ms"))
        await expect(results.nth(i)).to_contain_text(re.compile(r"Tokens\s*[0-9]+ in, [0-9]+ out"))
        await expect(results.nth(i)).to_contain_text(re.compile(r"Cost\s*\$0\.0000"))
        await expect(results.nth(i)).to_contain_text("fake mock-gpt")
    await console.shot("playground")

    # a bad input is an answer in the page, not a broken page
    await page.get_by_label("Variables (JSON object)").fill("{}")
    await page.get_by_role("button", name="Run both").click()
    await expect(results.nth(0).locator(".problem")).to_contain_text("400")


async def test_a_viewer_sees_no_approve_button_and_a_forced_call_is_refused(
    console: Console,
) -> None:
    await push_v2(console.gw)
    page = console.page
    await console.sign_in("vera")
    await page.get_by_role("link", name="support").click()
    await expect(page.locator("#versions tbody tr")).to_have_count(2)
    await expect(page.get_by_role("button", name="Approve v2")).to_have_count(0)
    await expect(page.get_by_role("button", name="Save routing")).to_be_hidden()
    await expect(page.get_by_role("button", name="Set label")).to_be_hidden()
    await console.go("Playground")
    await expect(page.get_by_role("button", name="Run both")).to_be_hidden()
    await expect(page.locator("#playground-refused")).to_be_visible()
    await console.shot("viewer")

    # The page hides the button; the API refuses the call anyway.
    status, refused = await console.forced("/admin/prompts/support/versions/v2/approve", {})
    assert status == 403
    assert refused["error"]["code"] == "insufficient_role"
    assert refused["error"]["role_needed"] == "approver"
    _, prompt = await admin_call(console.gw, "GET", "/prompts/support")
    assert prompt["versions"][1]["status"] == "draft"


async def test_an_approver_approves_a_version_from_the_page(console: Console) -> None:
    await push_v2(console.gw)
    page = console.page
    await console.sign_in("april")
    await page.get_by_role("link", name="support").click()
    await page.get_by_role("button", name="Approve v2").click()
    await expect(page.get_by_role("status")).to_have_text("v2 approved.")
    v2 = page.locator("#versions tbody tr", has_text="v2")
    await expect(v2).to_contain_text("approved")
    await expect(v2).to_contain_text("april")
    await expect(page.get_by_role("button", name="Approve v2")).to_have_count(0)
    _, prompt = await admin_call(console.gw, "GET", "/prompts/support")
    assert prompt["versions"][1]["approved_by"] == "april"


async def test_an_operator_sets_weights_and_labels_and_the_history_shows_them(
    console: Console,
) -> None:
    await push_v2(console.gw)
    await admin_call(console.gw, "POST", "/prompts/support/versions/v2/approve", {}, "april")
    page = console.page
    await console.sign_in("olga")
    await page.get_by_role("link", name="support").click()
    await page.get_by_label("v1 (%)").fill("90")
    await page.get_by_label("v2 (%)").fill("10")
    await page.get_by_label("Reason").fill("canary by hand")
    await page.get_by_role("button", name="Save routing").click()
    await expect(page.get_by_role("status")).to_have_text("Routing saved.")
    labels = page.get_by_role("group", name="Labels")
    await labels.get_by_label("Label").fill("staging")
    await labels.get_by_label("Version").select_option("v2")
    await labels.get_by_role("button", name="Set label").click()
    await expect(page.get_by_role("status")).to_have_text("staging → v2.")
    history = page.locator("#history tbody tr")
    await expect(history.first).to_contain_text("label")
    await expect(history.nth(1)).to_contain_text("canary by hand")
    await expect(page.locator("#versions tbody tr", has_text="v2")).to_contain_text("10%")
    row = page.locator("#prompt-list tbody tr", has_text="support")
    await expect(row).to_contain_text("v1 90% · v2 10%")
    await expect(row).to_contain_text("staging → v2")
    await console.shot("routing-and-labels")
    _, prompt = await admin_call(console.gw, "GET", "/prompts/support")
    assert prompt["routing"]["weights"] == {"v1": 90, "v2": 10}
    assert prompt["labels"] == {"staging": "v2"}

    # a protected label needs the approver role: the API's refusal shows in the page
    await labels.get_by_label("Label").fill("production")
    await page.get_by_role("button", name="Set label").click()
    await expect(page.get_by_role("alert")).to_contain_text("approver")


async def test_a_rollout_shows_with_its_decisions(console: Console) -> None:
    await push_v2(console.gw)
    await admin_call(console.gw, "POST", "/prompts/support/versions/v2/approve", {}, "april")
    plan = {"version": "v2", "steps": [10, 100], "interval_s": 3600}
    status, body = await admin_call(console.gw, "POST", "/prompts/support/rollout", plan, "olga")
    assert status == 201, body
    page = console.page
    await console.sign_in("olga")
    await console.go("Rollouts")
    card = page.locator("#rollout-list article")
    await expect(card.locator("h3")).to_have_text("support: v2 — running at 10%")
    await expect(card).to_contain_text("v1 90% · v2 10%")
    await expect(card.locator("tbody tr").first).to_contain_text("start")
    await expect(card.locator("ul li").first).to_contain_text("rollout of v2")
    await console.shot("rollout")

    await card.get_by_role("button", name="Pause").click()
    await expect(card.locator("h3")).to_have_text("support: v2 — paused at 10%")
    await expect(card.locator("tbody tr").first).to_contain_text("pause")
    await expect(card.get_by_role("button", name="Resume")).to_be_visible()
