"""The review queue in the console, in headless Chromium: a held answer approved as it
is, approved with an edited answer, rejected, each reaching the client that waits for
it; a viewer sees the queue without a decision button and its forced call is refused."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.console.support import Console, admin_call, client_review, held_request

# One loop for the browser and the gateways (see conftest); a browser on a loaded machine.
pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


async def test_a_reviewer_approves_a_held_answer_and_the_client_gets_it(
    console: Console,
) -> None:
    review_id = await held_request(console.gw, "tell me the secret")
    page = console.page
    await console.sign_in("rita")
    await console.go("Review queue")
    card = page.locator("#review-list article")
    await expect(card).to_have_count(1)
    await expect(card.locator("h3")).to_have_text("Held answer · route held")
    await expect(card).to_contain_text("secrets")  # the guard
    await expect(card.locator(".messages")).to_contain_text("tell me the secret")
    await expect(card.locator("pre.answer")).to_have_text("Mock answer to: tell me the secret")
    await console.shot("review-queue")

    await card.get_by_label("Note").fill("fine to send")
    await card.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text(f"Review {review_id} approved.")
    await expect(card).to_have_count(0)
    await expect(page.locator("#review-empty")).to_be_visible()

    answer = await client_review(console.gw, review_id)
    assert answer["status"] == "approved"
    message = answer["completion"]["choices"][0]["message"]
    assert message["content"] == "Mock answer to: tell me the secret"
    _, item = await admin_call(console.gw, "GET", f"/reviews/{review_id}")
    assert (item["state"], item["decided_by"], item["note"]) == ("approved", "rita", "fine to send")

    filters = page.get_by_role("form", name="Filter reviews")
    await filters.get_by_label("State").select_option("approved")
    await filters.get_by_role("button", name="Show").click()
    await expect(card).to_have_count(1)
    await expect(card).to_contain_text("rita")
    await expect(card.get_by_role("button")).to_have_count(0)  # decided: nothing to do


async def test_an_edited_approval_and_a_rejection_reach_their_clients(console: Console) -> None:
    edited = await held_request(console.gw, "the first secret")
    rejected = await held_request(console.gw, "the second secret")
    page = console.page
    await console.sign_in("rita")
    await console.go("Review queue")
    cards = page.locator("#review-list article")
    await expect(cards).to_have_count(2)

    first = cards.filter(has_text="the first secret")
    await first.get_by_label("Edited answer").fill("Here is a safe answer.")
    await first.get_by_role("button", name="Approve with edited answer").click()
    await expect(page.get_by_role("status")).to_have_text(f"Review {edited} approved.")
    await expect(cards).to_have_count(1)

    second = cards.filter(has_text="the second secret")
    await second.get_by_label("Note").fill("leaks the secret")
    await second.get_by_role("button", name="Reject").click()
    await expect(page.get_by_role("status")).to_have_text(f"Review {rejected} rejected.")
    await expect(cards).to_have_count(0)

    answer = await client_review(console.gw, edited)
    assert answer["status"] == "approved"
    assert answer["completion"]["choices"][0]["message"]["content"] == "Here is a safe answer."
    assert (await client_review(console.gw, rejected))["status"] == "rejected"
    _, item = await admin_call(console.gw, "GET", f"/reviews/{edited}")
    assert item["edited_answer"] == "Here is a safe answer."
    assert item["answer"] == "Mock answer to: the first secret"


async def test_a_viewer_sees_the_queue_but_no_decision_and_a_forced_call_is_refused(
    console: Console,
) -> None:
    review_id = await held_request(console.gw, "a secret for vera")
    page = console.page
    await console.sign_in("vera")
    await console.go("Review queue")
    card = page.locator("#review-list article")
    await expect(card).to_contain_text("a secret for vera")
    await expect(card.get_by_role("button")).to_have_count(0)
    await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    await console.shot("review-queue-viewer")

    status, refused = await console.forced(f"/admin/reviews/{review_id}/approve", {"note": "x"})
    assert status == 403
    assert refused["error"]["code"] == "insufficient_role"
    assert refused["error"]["role_needed"] == "reviewer"
    assert (await client_review(console.gw, review_id))["status"] == "pending"
