"""Turn jsonschema's errors into one message a person can act on."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from lib.config.yaml_loader import LoadedYaml
from lib.errors import did_you_mean

_TYPE_WORDS = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "a whole number",
    "number": "a number", "boolean": "true or false", "null": "empty",
}


def _describe(value: Any) -> str:
    kind = {dict: "a mapping", list: "a list", str: "the string", bool: "the boolean", type(None): "nothing"}
    for typ, word in kind.items():
        if isinstance(value, typ):
            if typ in (dict, list, type(None)):
                return word
            return f"{word} {value!r}"
    return f"the {type(value).__name__} {value!r}"


def _message(error: ValidationError) -> tuple[list, str]:
    path = list(error.absolute_path)
    hint = error.schema.get("x-hint") if isinstance(error.schema, dict) else None
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        key = extra[0]
        return path + [key], f"unknown key '{key}'{did_you_mean(key, allowed)}; allowed keys here: {', '.join(allowed)}"
    if v == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return path, f"missing required key '{missing[0]}'"
    if v == "type":
        want = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in want)
        return path, f"must be {words}, not {_describe(error.instance)}"
    if v == "enum":
        options = ", ".join(repr(o) for o in error.validator_value)
        did = did_you_mean(error.instance, error.validator_value)
        return path, f"{error.instance!r} is not allowed{did}; choose one of {options}"
    if v in ("minimum", "exclusiveMinimum", "maximum"):
        word = {"minimum": "at least", "exclusiveMinimum": "greater than", "maximum": "at most"}[v]
        return path, f"must be {word} {error.validator_value}, not {error.instance!r}"
    if v == "minItems":
        return path, "must list at least one entry"
    if v == "minLength":
        return path, "must not be empty"
    if hint:
        return path, f"{hint}; got {error.instance!r}"
    return path, error.message


def _first(doc: LoadedYaml, errors: list[ValidationError]) -> ValidationError:
    """The error a person should fix first: earliest in the file, then the most specific."""
    def flatten(err: ValidationError) -> list[ValidationError]:
        if err.context:  # oneOf/anyOf: the branch that got furthest says most
            return [e for sub in err.context for e in flatten(sub)] or [err]
        return [err]

    leaves = [leaf for err in errors for leaf in flatten(err)] if errors else []
    if any(e.validator == "oneOf" for e in errors):
        # for a oneOf, name the hint of the oneOf rather than a random branch
        for err in errors:
            if err.validator == "oneOf" and err.schema.get("x-hint"):
                return err
    return min(leaves, key=lambda e: (doc.line_of(list(e.absolute_path)) or 0, -len(e.absolute_path)))


def check_schema(doc: LoadedYaml, schema: dict) -> None:
    """Raise the first schema violation of ``doc`` as a ConfigError."""
    errors = list(Draft202012Validator(schema).iter_errors(doc.data))
    if not errors:
        return
    error = _first(doc, errors)
    path, message = _message(error)
    raise doc.error(path, message)
