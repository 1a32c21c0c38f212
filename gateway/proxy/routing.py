"""Which targets serve a request, in which order: a `RoutePlan` from the runtime."""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.config.loader import ClientKey, RouteConfig, Target
from gateway.errors import ApiError
from gateway.prompts.versions import PromptVersion
from gateway.proxy.runtime import Runtime
from gateway.store.snapshot import PromptEntry, PromptsSnapshot


@dataclass(slots=True)  # not frozen: made per request, and frozen init is slow
class RoutePlan:
    route: RouteConfig
    targets: tuple[Target, ...]  # in the order to try them
    prompt: str = ""
    version: str = ""
    pinned: bool = False  # `prompt:NAME@vN`: chosen by the caller, not by the weights


def order_targets(route: RouteConfig, rng: random.Random | None = None) -> tuple[Target, ...]:
    """`failover`: as configured. `weighted`: one weighted draw picks the first target,
    the others follow in configured order as fallbacks."""
    if route.strategy == "failover" or len(route.targets) == 1:
        return route.targets
    weights = [t.weight for t in route.targets]
    first = (rng or random).choices(range(len(route.targets)), weights=weights)[0]
    return (route.targets[first], *route.targets[:first], *route.targets[first + 1 :])


def plan_model_route(runtime: Runtime, model: str, key: ClientKey | None) -> RoutePlan:
    route = runtime.config.models.get(model)
    if route is None:
        raise ApiError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    if key is not None and not key.allows(model):
        raise ApiError(
            403,
            f"This key may not use the route `{model}`.",
            type_="permission_error",
            code="route_not_allowed",
            param="model",
        )
    return RoutePlan(route=route, targets=order_targets(route))


PROMPT_PREFIX = "prompt:"


def plan_prompt_route(
    runtime: Runtime,
    prompts: PromptsSnapshot,
    model: str,
    key: ClientKey | None,
    sticky_key: str | None,
) -> tuple[RoutePlan, PromptVersion]:
    """`prompt:NAME` picks a version by the sticky hash and weights; `prompt:NAME@vN`
    pins one (drafts included: for suites, replay and rollback checks), and
    `prompt:NAME@LABEL` the version the label points at."""
    name, at, pinned = model.removeprefix(PROMPT_PREFIX).partition("@")
    if at and not pinned:
        raise ApiError(
            400,
            f"`{model}` names no version: use `prompt:{name}` or `prompt:{name}@vN`.",
            code="invalid_model",
            param="model",
        )
    if key is not None and not key.allows(PROMPT_PREFIX + name):
        raise ApiError(
            403,
            f"This key may not use the prompt `{name}`.",
            type_="permission_error",
            code="route_not_allowed",
            param="model",
        )
    entry = prompts.prompts.get(name)
    if entry is None:
        raise ApiError(404, f"Unknown prompt `{name}`.", code="prompt_not_found", param="model")
    version = _pick_version(entry, name, pinned, sticky_key)
    route = runtime.config.models.get(version.content.model)
    if route is None:
        raise ApiError(
            404,
            f"Prompt `{name}` {version.id} uses the route "
            f"`{version.content.model}`, which is not configured.",
            code="model_not_found",
            param="model",
        )
    pins = version.content.targets
    return RoutePlan(
        route=route,
        targets=pinned_targets(runtime, name, version) if pins else order_targets(route),
        prompt=name,
        version=version.id,
        pinned=bool(pinned),
    ), version


def _pick_version(
    entry: PromptEntry, name: str, pinned: str, sticky_key: str | None
) -> PromptVersion:
    if pinned:
        version = entry.versions.get(entry.labels.get(pinned, pinned))
        if version is None:
            raise ApiError(
                404,
                f"Prompt `{name}` has no version or label `{pinned}`.",
                code="version_not_found",
                param="model",
            )
        return version
    if entry.picker is None or not entry.picker.versions:
        raise ApiError(
            404,
            f"Prompt `{name}` has no live version yet.",
            code="prompt_not_routed",
            param="model",
        )
    return entry.versions[entry.picker.pick(sticky_key)]


def pinned_targets(runtime: Runtime, name: str, version: PromptVersion) -> tuple[Target, ...]:
    """A version's own targets, in its order, those whose provider is configured."""
    providers = runtime.config.providers
    targets = tuple(
        Target(p.provider, p.model) for p in version.content.targets if p.provider in providers
    )
    if not targets:
        raise ApiError(
            503,
            f"Prompt `{name}` {version.id} is pinned to targets whose providers are not "
            "configured.",
            type_="api_error",
            code="no_target",
        )
    return targets
