"""Captures in the console, in headless Chromium: each captured request with its
feedback; a reviewer labels one from the page, the label is kept under the reviewer's
name and filters the list; a viewer sees no label form and its forced call is refused."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from gateway.appkeys import CAPTURE, FEEDBACK
from tests.conftest import Gateway
from tests.console.support import Console, admin_call
from tests.evaluation.test_capture import ask
from tests.evaluation.test_feedback import feedback

# One loop for the browser and the gateways (see conftest); a browser on a loaded machine.
pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


async def captured_with_feedback(gw: Gateway) -> None:
    """Two captured requests on `support`; the first has positive feedback."""
    await ask(gw, "req-liked", content="where is my parcel?")
    await ask(gw, "req-plain", content="opening hours?")
    await gw.app[CAPTURE].flush()
    await gw.app[FEEDBACK].index.flush()
    status, body = await feedback(gw, {"request_id": "req-liked", "score": 1, "comment": "spot on"})
    assert status == 200, body


async def test_a_reviewer_labels_a_capture_and_the_label_filters_the_list(
    console: Console,
) -> None:
    await captured_with_feedback(console.gw)
    page = console.page
    await console.sign_in("rita")
    await console.go("Captures")
    rows = page.locator("#capture-list tbody tr")
    await expect(rows).to_have_count(2)
    liked = rows.filter(has_text="positive")
    await expect(liked).to_contain_text("“spot on” from test-app")
    await expect(liked).to_contain_text("support@v1")

    await page.get_by_role("button", name="Open capture req-liked").click()
    detail = page.locator("#capture-detail")
    await expect(detail.locator("h3")).to_have_text("Capture req-liked")
    await expect(detail.locator(".messages")).to_contain_text("where is my parcel?")
    await expect(detail.locator(".messages")).to_contain_text("You answer for Acme.")
    await expect(detail.locator("pre.answer")).to_have_text("Mock answer to: where is my parcel?")
    form = page.get_by_role("group", name="Label this capture")
    await form.get_by_label("Label").fill("good-answer")
    await form.get_by_label("Note").fill("a model answer for the dataset")
    await form.get_by_role("button", name="Add label").click()
    await expect(page.get_by_role("status")).to_have_text("Labelled good-answer.")
    await expect(detail.locator("#capture-labels li")).to_contain_text(
        "good-answer — a model answer for the dataset (rita"
    )
    await expect(liked).to_contain_text("good-answer")
    await console.shot("captures")

    _, labels = await admin_call(console.gw, "GET", "/captures/req-liked/labels")
    assert [(x["label"], x["by"]) for x in labels["labels"]] == [("good-answer", "rita")]

    # the label and the feedback filter the list
    filters = page.get_by_role("form", name="Filter captures")
    await filters.get_by_label("Label").fill("good-answer")
    await filters.get_by_role("button", name="Show").click()
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("support@v1")
    await filters.get_by_label("Label").fill("")
    await filters.get_by_label("Feedback").select_option("none")
    await filters.get_by_role("button", name="Show").click()
    await expect(rows).to_have_count(1)
    await expect(rows.get_by_role("button")).to_have_accessible_name("Open capture req-plain")

    # a bad label is the API's refusal, shown in the page
    await page.get_by_role("button", name="Open capture req-plain").click()
    await form.get_by_label("Label").fill("Not A Label")
    await form.get_by_role("button", name="Add label").click()
    await expect(page.get_by_role("alert")).to_contain_text("A label is lowercase letters")


async def test_a_viewer_sees_no_label_form_and_a_forced_label_is_refused(
    console: Console,
) -> None:
    await captured_with_feedback(console.gw)
    page = console.page
    await console.sign_in("vera")
    await console.go("Captures")
    await page.get_by_role("button", name="Open capture req-liked").click()
    await expect(page.locator("#capture-detail h3")).to_have_text("Capture req-liked")
    await expect(page.get_by_role("button", name="Add label")).to_be_hidden()

    status, refused = await console.forced("/admin/captures/req-liked/labels", {"label": "x"})
    assert status == 403
    assert refused["error"]["role_needed"] == "reviewer"
    _, labels = await admin_call(console.gw, "GET", "/captures/req-liked/labels")
    assert labels["labels"] == []
