"""Typed edges: a client's JSON (an admin body, feedback) decoded into a typed structure
by msgspec, with one way of reporting a bad field, and one way of reading who acts.
(Stored records decode with msgspec too, beside their types in gateway.store.)

A bad field is an `Invalid` error whose `param` names the field (`guards.min_requests`,
`weights`) and whose message is msgspec's ("Expected `str`, got `int` - at `$.by`")."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from gateway.appkeys import ADMIN
from gateway.errors import Invalid

T = TypeVar("T")
ACTOR_HEADER = "X-Gateway-Actor"
_AT = re.compile(r" - at `\$([^`]*)`$")
_FIELD = re.compile(r"(?:unknown|required) field `([^`]+)`")


def decode(data: Any, type_: type[T]) -> T:
    """`data` (parsed JSON) as `type_`; `Invalid` naming the field otherwise. Strict:
    `true` is no number and `"1"` no integer."""
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None


def invalid(exc: msgspec.ValidationError) -> Invalid:
    """msgspec's error as `Invalid`, its path as `param`."""
    message = str(exc)
    at = _AT.search(message)
    # A dict's value is at `$.weights[...]`: the field is `weights`.
    path = at.group(1).lstrip(".").replace("[...]", "") if at else ""
    named = _FIELD.search(message)
    if named is not None:  # `$.guards` + unknown field `nope`: the param is guards.nope
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return Invalid(message, param=path or None)


def actor(request: web.Request, by: str | None = None) -> str:
    """Who is acting: the name the admin API authenticated (its middleware puts it on
    the request). A `by` in a body or an `X-Gateway-Actor` header is not trusted: one
    that names somebody else is refused."""
    name: str = request[ADMIN].name
    for claimed in (by, request.headers.get(ACTOR_HEADER)):
        if claimed is not None and claimed != name:
            raise Invalid(
                f"'by' is who the token belongs to ({name}); it cannot name {claimed[:40]!r}.",
                param="by",
                code="by_not_trusted",
            )
    return name


class Body(msgspec.Struct, frozen=True, kw_only=True):
    """An admin body: its fields, and `by`, who acts (see `actor`). Other fields are
    ignored unless a body says `forbid_unknown_fields=True`."""

    by: str | None = None
