"""Version selection and template rendering."""

from __future__ import annotations

import random

import pytest

from gateway.errors import DomainError, api_error
from gateway.prompts.versions import PromptContent, VersionPicker, render_messages


def test_split_lands_within_four_points_over_2000_users() -> None:
    picker = VersionPicker.from_weights("support", {"v1": 70, "v2": 30})
    picks = [picker.pick(f"user-{i}") for i in range(2000)]
    share = picks.count("v2") / len(picks)
    assert 0.26 <= share <= 0.34


def test_same_user_same_version_every_time() -> None:
    picker = VersionPicker.from_weights("support", {"v1": 50, "v2": 50})
    for i in range(200):
        first = picker.pick(f"user-{i}")
        assert all(picker.pick(f"user-{i}") == first for _ in range(5))


def test_ramping_the_canary_moves_no_canary_user_back() -> None:
    users = [f"user-{i}" for i in range(2000)]
    steps = [{"v1": 90, "v2": 10}, {"v1": 75, "v2": 25}, {"v1": 50, "v2": 50}, {"v2": 100, "v1": 0}]
    on_canary: set[str] = set()
    for weights in steps:
        picker = VersionPicker.from_weights("support", weights)
        now = {u for u in users if picker.pick(u) == "v2"}
        assert on_canary <= now  # everyone already on the canary stays there
        on_canary = now
    assert len(on_canary) == len(users)


def test_no_sticky_key_is_random() -> None:
    picker = VersionPicker.from_weights("p", {"v1": 50, "v2": 50})
    rng = random.Random(7)
    picks = {picker.pick(None, rng) for _ in range(50)}
    assert picks == {"v1", "v2"}


def test_render_substitutes_variables_as_plain_text() -> None:
    content = PromptContent("m", ({"role": "system", "content": "For {{product}} ({{ tier }})."},))
    rendered = render_messages(content, {"product": "{{tier}}", "tier": 3})
    # A value is inserted as text and never read again as a template.
    assert rendered == [{"role": "system", "content": "For {{tier}} (3)."}]


def test_render_missing_variable_is_a_400_naming_it() -> None:
    content = PromptContent("m", ({"role": "system", "content": "Hi {{name}}"},))
    with pytest.raises(DomainError) as caught:
        render_messages(content, {})
    assert api_error(caught.value).status == 400
    assert "'name'" in caught.value.message


def test_content_hash_ignores_key_order() -> None:
    a = PromptContent("m", ({"role": "user", "content": "x"},), {"temperature": 0.1, "top_p": 1})
    b = PromptContent("m", ({"content": "x", "role": "user"},), {"top_p": 1, "temperature": 0.1})
    assert a.hash == b.hash
