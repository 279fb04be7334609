"""Turn jsonschema's errors into one message a person can act on."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from lib.config.yaml_loader import LoadedYaml
from lib.errors import did_you_mean, shown_key

_TYPE_WORDS = {
    "object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
    "number": "a number", "boolean": "true or false", "null": "empty",
}
_SHOWN = 80  # characters of a value quoted back in a message


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 5] + "...'"


def _describe(value: Any) -> str:
    kind = {dict: "a mapping", list: "a list", str: "the text", bool: "the boolean", type(None): "nothing",
            int: "the number", float: "the number"}
    for typ, word in kind.items():
        if isinstance(value, typ):
            if typ in (dict, list, type(None)):
                return word
            return f"{word} {_short(value)}"
    return f"the {type(value).__name__} {_short(value)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unknown_keys(doc: LoadedYaml, error: ValidationError) -> list[str]:
    """The keys refused by ``additionalProperties``, in the order they are written."""
    allowed = set(error.schema.get("properties", {}))
    path = list(error.absolute_path)
    extra = [k for k in error.instance if k not in allowed]
    return sorted(extra, key=lambda k: doc.line_of(path + [k]) or 0)


def _message(doc: LoadedYaml, error: ValidationError) -> tuple[list, str]:
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("x-hint")
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        key = _unknown_keys(doc, error)[0]
        missing = [k for k in schema.get("required", []) if k not in error.instance]
        shown = shown_key(key)
        shown = shown if shown.startswith('"') else f"'{shown}'"
        return path + [key], (f"unknown key {shown}{did_you_mean(key, allowed, prefer=missing)}; "
                              f"allowed keys here: {', '.join(allowed)}")
    if v == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return path, f"missing required key '{missing[0]}'"
    if v == "type":
        want = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        written = doc.source_text(path)
        if schema.get("x-version") and _is_number(error.instance):
            read = f" (YAML reads it as the number {error.instance})" if written != str(error.instance) else ""
            return path, (f"a version is text, but {written or error.instance} is a number{read}: put it in "
                          f"quotes, {path[-1] if path else 'version'}: \"{written or error.instance}\"")
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in want)
        message = f"must be {words}, not {_describe(error.instance)}"
        if "string" in want and (_is_number(error.instance) or isinstance(error.instance, bool)) and written:
            message += f"; put it in quotes if you mean the text \"{written}\""
        return path, message
    if v == "enum":
        options = ", ".join(repr(o) for o in error.validator_value)
        did = did_you_mean(error.instance, error.validator_value)
        return path, f"{_short(error.instance)} is not allowed{did}; choose one of {options}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        if hint and v.startswith("exclusive"):
            return path, f"{hint}; got {_short(error.instance)}"
        word = {"minimum": "at least", "exclusiveMinimum": "greater than", "maximum": "at most",
                "exclusiveMaximum": "less than"}[v]
        why = f" ({schema['x-limit']})" if v.endswith("aximum") and schema.get("x-limit") else ""
        return path, f"must be {word} {error.validator_value}{why}, not {_short(error.instance)}"
    if v == "minItems":
        return path, "must list at least one entry"
    if v == "minLength":
        return path, f"must not be empty{'; ' + hint if hint else ''}"
    if v == "maxLength" and isinstance(error.instance, str):
        shown = f"; got {_short(error.instance)}" if hint else ""
        return path, (f"{hint + ': ' if hint else ''}{len(error.instance):,} characters is too long; at most "
                      f"{error.validator_value} are allowed{shown}")
    if v == "maxItems":
        return path, f"lists {len(error.instance)} entries; at most {error.validator_value} are allowed"
    if v == "maxProperties":
        return path, f"has {len(error.instance)} entries; at most {error.validator_value} are allowed"
    if hint:
        return path, f"{hint}; got {_short(error.instance)}"
    return path, error.message if len(error.message) <= 300 else error.message[:297] + "..."


def _reported_line(doc: LoadedYaml, error: ValidationError) -> int:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        path = path + _unknown_keys(doc, error)[:1]
    return doc.line_of(path) or 0


def _first(doc: LoadedYaml, errors: list[ValidationError]) -> ValidationError:
    """The error a person should fix first: a "missing" key only once nothing else is wrong (a misspelt
    required key is unknown and missing at once: its name, as written, says most); then the earliest in
    the file, then the most specific."""
    def flatten(err: ValidationError) -> list[ValidationError]:
        if err.validator == "oneOf" and err.schema.get("x-hint"):
            return [err]  # name the hint of the oneOf rather than a random branch
        if err.context:  # anyOf/oneOf: the branch that got furthest says most
            return [e for sub in err.context for e in flatten(sub)] or [err]
        return [err]

    leaves = [leaf for err in errors for leaf in flatten(err)]
    return min(leaves, key=lambda e: (e.validator == "required", _reported_line(doc, e), -len(e.absolute_path)))


def check_schema(doc: LoadedYaml, schema: dict) -> None:
    """Raise the first schema violation of ``doc`` as a ConfigError."""
    errors = list(Draft202012Validator(schema).iter_errors(doc.data))
    if not errors:
        return
    error = _first(doc, errors)
    path, message = _message(doc, error)
    raise doc.error(path, message)
