"""The `json_schema` check is JSON Schema draft 2020-12 (the `jsonschema` package):
keywords beyond any subset are enforced, and a schema with an unknown keyword, an
invalid shape or a reference to nowhere is refused when the case is read, never a
check that silently passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.evaluation.json_schema import BadSchema, check_schema, schema_errors
from gateway.evaluation.suites import Case, SuiteError, judge, load_suite, parse_case
from gateway.telemetry.recorder import RequestRecord

ORDER = {
    "$defs": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"}},
    "type": "object",
    "required": ["id", "lines"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "lines": {
            "type": "array",
            "prefixItems": [{"$ref": "#/$defs/sku"}, {"type": "integer", "exclusiveMinimum": 0}],
            "items": False,
        },
        "paid": {"oneOf": [{"type": "boolean"}, {"const": "partly"}]},
        "meta": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "unevaluatedProperties": False,
}


def test_keywords_beyond_the_old_subset_are_enforced() -> None:
    check_schema(ORDER)
    good = {"id": 7, "lines": ["ABC-12", 3], "paid": "partly", "meta": {"note": "x"}}
    assert schema_errors(good, ORDER) == []
    bad = {"id": 0, "lines": ["abc", 0, "extra"], "paid": 1, "meta": {"n": 2}, "surprise": 1}
    errors = schema_errors(bad, ORDER)
    assert errors == [
        "$: Unevaluated properties are not allowed ('surprise' was unexpected)",
        "$.id: 0 is less than the minimum of 1",
        "$.lines: Expected at most 2 items but found 1 extra: 'extra'",
        "$.lines[0]: 'abc' does not match '^[A-Z]{3}-[0-9]+$'",
        "$.lines[1]: 0 is less than or equal to the minimum of 0",
        "$.meta.n: 2 is not of type 'string'",
        "$.paid: 1 is not valid under any of the given schemas",
    ]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "minimun": 1}, "unknown keyword 'minimun' at #"),
        (
            {"properties": {"a": {"items": {"tpye": "string"}}}},
            "unknown keyword 'tpye' at #/properties/a/items",
        ),
        ({"definitions": {"x": {}}}, "unknown keyword 'definitions'"),  # draft 7's name
        ({"oneOf": [{"type": "string"}, {"nullable": True}]}, "'nullable' at #/oneOf/1"),
        ({"type": "objekt"}, "invalid at #/type"),
        ({"minimum": "3"}, "invalid at #/minimum"),
        ({"required": "id"}, "invalid at #/required"),
        ({"$ref": "#/$defs/missing"}, "points nowhere"),
        ({"$ref": "https://example.com/other.json"}, "points nowhere"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "only draft 2020-12"),
        ("string", "a schema is a JSON object"),
    ],
)
def test_a_schema_that_could_not_check_is_refused(schema: Any, message: str) -> None:
    with pytest.raises(BadSchema, match=message.replace("$", r"\$")):
        check_schema(schema)


def test_every_vocabulary_of_the_draft_is_accepted() -> None:
    check_schema(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.com/answer",
            "$comment": "core, applicator, unevaluated, validation, meta-data, format, content",
            "title": "answer",
            "description": "what the model says",
            "deprecated": False,
            "examples": [{"a": 1}],
            "type": "object",
            "propertyNames": {"maxLength": 8},
            "patternProperties": {"^x-": {"readOnly": True}},
            "dependentRequired": {"a": ["b"]},
            "dependentSchemas": {"c": {"minProperties": 2}},
            "if": {"required": ["a"]},
            "then": {"maxProperties": 5},
            "else": {"not": {"required": ["b"]}},
            "properties": {
                "when": {"type": "string", "format": "date-time", "default": "now"},
                "blob": {"contentEncoding": "base64", "contentMediaType": "image/png"},
                "tags": {"contains": {"const": "x"}, "minContains": 1, "maxContains": 2},
                "n": {"multipleOf": 2, "maximum": 10, "exclusiveMaximum": 11},
                "s": {"minLength": 1, "enum": ["a", "b"], "writeOnly": True},
                "l": {"uniqueItems": True, "minItems": 1, "maxItems": 3, "$anchor": "l"},
                "tree": {"$dynamicAnchor": "node", "unevaluatedItems": False},
            },
        }
    )


def test_a_case_with_a_bad_schema_is_refused_where_it_is() -> None:
    line = {"name": "x", "checks": {"json_schema": {"type": "object", "colour": "red"}}}
    with pytest.raises(SuiteError, match=r"suite.jsonl:3: check 'json_schema': unknown keyword"):
        parse_case(line, "suite.jsonl:3", 3)


def test_a_suite_file_line_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "suite.jsonl"
    good = {"name": "ok", "checks": {"json_schema": ORDER}}
    bad = {"name": "bad", "checks": {"json_schema": {"properties": {"id": {"minimun": 1}}}}}
    path.write_text(orjson.dumps(good).decode() + "\n" + orjson.dumps(bad).decode() + "\n")
    with pytest.raises(SuiteError, match=r":2: check 'json_schema': unknown keyword 'minimun'"):
        load_suite(path)


def test_judge_applies_the_schema_to_the_answer() -> None:
    case = Case("order", 1, checks={"json_schema": ORDER})

    def answered(text: str) -> RequestRecord:
        return RequestRecord("r", "/v1/chat/completions", status=200, answer=text)

    assert judge(case, answered('{"id": 3, "lines": ["ABC-1", 2]}')) == []
    assert judge(case, answered('{"id": 3, "lines": []}')) == []
    assert judge(case, answered('{"lines": []}')) == ["json_schema: $: 'id' is a required property"]
    assert judge(case, answered("not json")) == ["valid_json: the answer is not JSON"]
