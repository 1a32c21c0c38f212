"""The `json_schema` check: JSON Schema draft 2020-12, validated by `jsonschema` (the
reference implementation), with one rule on top: every keyword of a schema must be one
of the draft's vocabularies. The draft itself ignores unknown keywords, so a typo
(`"minimun": 3`) or a keyword of another draft (`"definitions"`) would make a check
that always passes; here it is an error when the case is read.

`format` is an annotation (the format-annotation vocabulary): it is not asserted."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MAX_ERRORS = 10  # per answer, in a case's failures

# The keywords whose value is a schema, a map of names to schemas, or a list of them.
ONE_SCHEMA = frozenset(
    {
        "additionalProperties",
        "propertyNames",
        "items",
        "contains",
        "not",
        "if",
        "then",
        "else",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contentSchema",
    }
)
SCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
# The 2020-12 vocabularies: core, applicator, unevaluated, validation, meta-data,
# format-annotation, content.
KEYWORDS = (
    ONE_SCHEMA
    | SCHEMA_MAP
    | SCHEMA_LIST
    | {
        # core
        "$schema",
        "$id",
        "$ref",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$vocabulary",
        "$comment",
        # validation
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
        "required",
        "dependentRequired",
        # meta-data
        "title",
        "description",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "examples",
        # format-annotation
        "format",
        # content
        "contentEncoding",
        "contentMediaType",
    }
)


class BadSchema(ValueError):
    """A schema that cannot be a check; the message says where and why."""


def check_schema(schema: Any) -> None:
    """`BadSchema` unless `schema` is a valid draft 2020-12 schema (per its metaschema)
    that uses only the draft's keywords and whose `$ref`s all resolve."""
    if not isinstance(schema, (dict, bool)):
        raise BadSchema("a schema is a JSON object (or true/false)")
    if isinstance(schema, dict) and schema.get("$schema", DRAFT) != DRAFT:
        raise BadSchema(f"only draft 2020-12 is supported ($schema {DRAFT!r})")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "#/" + "/".join(str(p) for p in exc.path)
        raise BadSchema(f"invalid at {where}: {exc.message}") from None
    root = DRAFT202012.create_resource(schema)
    base = root.id() or ""
    resolver = Registry().with_resource(base, root).crawl().resolver(base_uri=base)
    for where, sub, at in _subschemas(schema, "#", resolver):
        unknown = sorted(set(sub) - KEYWORDS)
        if unknown:
            raise BadSchema(
                f"unknown keyword {unknown[0]!r} at {where} (not in JSON Schema 2020-12)"
            )
        for keyword in ("$ref", "$dynamicRef"):
            if keyword in sub:
                try:
                    at.lookup(sub[keyword])
                except Unresolvable:
                    raise BadSchema(
                        f"{keyword} {sub[keyword]!r} at {where} points nowhere "
                        "(only references within the schema resolve)"
                    ) from None


def _subschemas(
    schema: Any, where: str, resolver: Any
) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Every object schema within `schema`, where it is, and the resolver for its
    references (a `$id` starts a new base URI)."""
    if not isinstance(schema, dict):
        return
    if "$id" in schema and where != "#":
        resolver = resolver.in_subresource(Resource.from_contents(schema, DRAFT202012))
    yield where, schema, resolver
    for keyword, value in schema.items():
        here = f"{where}/{keyword}"
        if keyword in ONE_SCHEMA:
            yield from _subschemas(value, here, resolver)
        elif keyword in SCHEMA_MAP and isinstance(value, Mapping):
            for name, sub in value.items():
                yield from _subschemas(sub, f"{here}/{name}", resolver)
        elif keyword in SCHEMA_LIST and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _subschemas(sub, f"{here}/{i}", resolver)


def schema_errors(value: Any, schema: Any) -> list[str]:
    """What in `value` breaks `schema` (checked by `check_schema` already): each error
    with the JSON path it is at, in document order, at most `MAX_ERRORS`."""
    validator = Draft202012Validator(schema)
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.path])
    except Unresolvable as exc:  # a schema that slipped past the check
        return [f"cannot resolve a reference: {exc}"]
    found = [f"{e.json_path}: {e.message}" for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        found.append(f"… and {len(errors) - MAX_ERRORS} more")
    return found
