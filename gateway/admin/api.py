"""`/admin/*`: the admin sub-app, behind the admin identities (gateway.admin.identity),
and its routes. JSON in and out; errors in OpenAI's shape."""

from __future__ import annotations

from aiohttp import web

from gateway.admin import config, labels, prompts
from gateway.admin.identity import admin_auth
from gateway.admin.keys import add_key_routes
from gateway.admin.playground import add_playground_routes
from gateway.admin.prompt_docs import add_docs_routes
from gateway.admin.spend import add_spend_routes
from gateway.evaluation.api import add_evaluation_routes
from gateway.evaluation.capture_labels_api import add_capture_label_routes
from gateway.evaluation.dataset_api import add_dataset_routes
from gateway.evaluation.feedback_api import add_feedback_routes
from gateway.evaluation.replays_api import add_replay_routes
from gateway.guards.review_api import add_review_routes
from gateway.rollout.api import add_rollout_routes
from gateway.shadow.report import add_report_routes


def create_admin_app() -> web.Application:
    admin = web.Application(middlewares=[admin_auth])
    admin.router.add_get("/prompts", prompts.list_prompts)
    admin.router.add_get("/whoami", prompts.whoami)
    admin.router.add_get("/prompts/{name}", prompts.show_prompt)
    admin.router.add_patch("/prompts/{name}", prompts.edit_docs)
    admin.router.add_put("/prompts/{name}/labels/{label}", labels.set_label)
    admin.router.add_delete("/prompts/{name}/labels/{label}", labels.delete_label)
    admin.router.add_post("/prompts/{name}/versions", prompts.push_version)
    admin.router.add_post("/prompts/{name}/versions/{version}/approve", prompts.approve)
    admin.router.add_put("/prompts/{name}/routing", prompts.set_routing)
    admin.router.add_post("/prompts/{name}/rollback", prompts.rollback)
    admin.router.add_get("/prompts/{name}/history", prompts.history)
    add_docs_routes(admin)  # /prompts/{name}/diff, /prompts/{name}/runbook
    add_report_routes(admin)  # /prompts/{name}/shadow, /models/{alias}/shadow
    admin.router.add_get("/config", config.show_config)
    admin.router.add_post("/reload", config.reload_config)
    admin.router.add_get("/providers", config.providers)
    add_replay_routes(admin)  # /prompts/{name}/replays[/{replay}]
    add_evaluation_routes(admin)  # captures
    add_capture_label_routes(admin)  # /captures/{id}/labels, /captures/{id}/dataset-case
    add_feedback_routes(admin)  # /feedback
    add_dataset_routes(admin)  # /datasets…, /prompts/{name}/versions/{v}/test, …/runs
    add_rollout_routes(admin)  # /prompts/{name}/rollout[/pause|/resume]
    add_key_routes(admin)  # /keys[/{name}[/rotate]]
    add_spend_routes(admin)  # /spend, /limits
    add_playground_routes(admin)  # /prompts/{name}/playground
    add_review_routes(admin)  # /reviews[/{id}[/approve|/reject]]
    return admin
