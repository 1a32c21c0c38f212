"""Typed edges: a bad field of any body is one `Invalid` naming it, and a 400 that
says which field in `param`."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.decoding import decode
from gateway.errors import Invalid, api_error
from gateway.evaluation.feedback import FeedbackBody
from gateway.prompts.bodies import RoutingBody, VersionBody
from gateway.rollout.state import RolloutRequest


@pytest.mark.parametrize(
    ("body", "type_", "param"),
    [
        ({"model": "m", "messages": [{"role": "u", "content": "x"}], "by": 5}, VersionBody, "by"),
        ({"model": "m", "messages": []}, VersionBody, "messages"),
        ({"model": "m", "messages": [{"role": "u", "content": "x"}], "x": 1}, VersionBody, "x"),
        ({"weights": {"v1": 101}}, RoutingBody, "weights"),
        ({"weights": {"v1": 100}, "shadow": {"sample_rate": 2}}, RoutingBody, "shadow.sample_rate"),
        ({"version": "v2", "guards": {"nope": 1}}, RolloutRequest, "guards.nope"),
        ({"version": "v", "guards": {"min_feedback": True}}, RolloutRequest, "guards.min_feedback"),
        ({"version": "v2", "steps": [50, 20, 100]}, RolloutRequest, "steps"),
        ({"request_id": "r"}, FeedbackBody, "score"),
    ],
)
def test_a_bad_field_is_a_400_naming_it(body: dict[str, Any], type_: type, param: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode(body, type_)
    answer = api_error(caught.value)
    assert (answer.status, answer.type, answer.param) == (400, "invalid_request_error", param)


def test_a_good_body_decodes_into_its_types() -> None:
    body = decode({"weights": {"v1": 90, "v2": 10}, "shadow": {"versions": ["v3"]}}, RoutingBody)
    routing = body.routing()
    assert routing.weights == {"v1": 90, "v2": 10}
    assert (routing.shadow.versions, routing.shadow.sample_rate) == (("v3",), 1.0)
