"""Parameter schemas: each registry parameter's allowed values, checked with JSON Schema.

A parameter's *type* comes from its annotation in :mod:`common.config.params`
(``int``, ``list[float]``, ``str | None`` ...); its *constraints* (a range, the
allowed values, a list's length and its items) come from the registry's
``parameter_schemas`` section, written as JSON Schema keywords. The two are
merged into one JSON Schema per experiment and checked with ``jsonschema``
when the parameters are built, i.e. before any notebook kernel starts; a
value outside its constraints raises one :class:`~common.errors.ParameterError`
that gives the valid range.

Example:
    >>> from common.config import registry
    >>> registry.resolve("iqoth", "smoke", {"batch_size": 0})
    Traceback (most recent call last):
    ...
    common.errors.ParameterError: Parameter 'batch_size' must be an integer of at least 1; got 0.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema

from common.config import registry
from common.errors import ParameterError

# Annotation -> JSON Schema type.
JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}
# Words for the types in messages.
TYPE_WORDS = {
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "string": "text",
    "array": "a list",
    "object": "a mapping",
}


def _is_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 3.0 as an integer; a run parameter wants an int.
    return isinstance(instance, int) and not isinstance(instance, bool)


# Draft 2020-12 with a strict integer type.
Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a field annotation: its type, its items' type, and ``null`` when optional.

    Example:
        >>> type_schema(list[float] | None)
        {'type': ['array', 'null'], 'items': {'type': 'number'}}
    """
    types_: list[str] = []
    schema: dict[str, Any] = {}
    members = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    for member in members or (annotation,):
        if member is type(None):
            types_.append("null")
            continue
        origin = typing.get_origin(member) or member
        types_.append(JSON_TYPES.get(origin, "string"))
        args = typing.get_args(member)
        if origin is list and args and args[0] in JSON_TYPES:
            schema["items"] = {"type": JSON_TYPES[args[0]]}
    schema = {"type": types_[0] if len(types_) == 1 else types_, **schema}
    return schema


def merged(base: Mapping[str, Any], constraints: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``constraints`` added; nested mappings (``items``) are merged, not replaced."""
    out = dict(base)
    for key, value in constraints.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merged(out[key], value) if nested else value
    return out


@functools.cache
def _constraints() -> dict[str, dict[str, Any]]:
    return registry.section("parameter_schemas")


def constraints(name: str) -> dict[str, Any]:
    """The registry's constraints of one parameter (JSON Schema keywords).

    Raises:
        ParameterError: for a parameter the registry declares no schema for.
    """
    known = _constraints()
    if name not in known:
        raise ParameterError(f"The registry's parameter_schemas section has no entry for {name!r}.")
    return dict(known[name] or {})


def parameter_schema(name: str, annotation: Any) -> dict[str, Any]:
    """One parameter's whole JSON Schema: its annotation's type plus the registry's constraints."""
    return merged(type_schema(annotation), constraints(name))


def describe(schema: Mapping[str, Any]) -> str:
    """A schema in words, for messages: ``an integer from 32 to 1024``, ``a list of 3 items, each ...``.

    Example:
        >>> describe({"type": "integer", "minimum": 1})
        'an integer of at least 1'
        >>> describe({"type": "array", "minItems": 1, "items": {"enum": ["a", "b"]}})
        'a list of at least 1 item, each one of a, b'
    """
    if "enum" in schema:
        return "one of " + ", ".join(_word(value) for value in schema["enum"])
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    words = " or ".join(TYPE_WORDS[kind] for kind in kinds if kind != "null")
    text = " ".join(part for part in (words, _range(schema), _size(schema)) if part)
    details = _items(schema) + _object_words(schema) + (["not empty"] if "minLength" in schema else [])
    text = ", ".join([text, *details]) if text else ", ".join(details)
    return (text or "any value") + (", or null" if "null" in kinds else "")


def _word(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _range(schema: Mapping[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"from {low} to {high}"
    bounds = [
        f"{words} {schema[key]}"
        for key, words in (
            ("minimum", "at least"),
            ("exclusiveMinimum", "greater than"),
            ("maximum", "at most"),
            ("exclusiveMaximum", "less than"),
        )
        if schema.get(key) is not None
    ]
    if bounds and schema.get("type"):
        bounds[0] = ("of " if bounds[0].startswith("at ") else "") + bounds[0]
    return " and ".join(bounds)


def _size(schema: Mapping[str, Any]) -> str:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None and low == high:
        return f"of {low} items"
    bounds = [f"{word} {n} item{'s' if n != 1 else ''}" for word, n in (("at least", low), ("at most", high)) if n]
    return ("of " + " and ".join(bounds)) if bounds else ""


def _items(schema: Mapping[str, Any]) -> list[str]:
    parts = []
    if "prefixItems" in schema:
        parts.append("; ".join(f"item {n} {describe(item)}" for n, item in enumerate(schema["prefixItems"], 1)))
    elif "items" in schema and set(schema["items"]) - {"type"}:
        parts.append("each " + describe(schema["items"]))
    if schema.get("uniqueItems"):
        parts.append("without repeats")
    return parts


def _object_words(schema: Mapping[str, Any]) -> list[str]:
    properties, values = schema.get("properties"), schema.get("additionalProperties")
    if not properties:
        return ["each value " + describe(values)] if isinstance(values, Mapping) else []
    keys = "; ".join(f"{key}: {describe(sub)}" for key, sub in properties.items())
    return [("with the keys " if schema.get("required") else "with keys among ") + keys]


@functools.cache
def experiment_schema(params_class: type, names: tuple[str, ...]) -> dict[str, Any]:
    """The JSON Schema of one parameters class: an object with one property per registry parameter."""
    hints = typing.get_type_hints(params_class)
    return {"type": "object", "properties": {name: parameter_schema(name, hints[name]) for name in names}}


def validate(params_class: type, values: Mapping[str, Any], names: Iterable[str], examples: Mapping[str, Any]) -> None:
    """Check the registry parameters of a run against their schemas (types and constraints).

    Args:
        params_class: The run's :class:`~common.config.params.RunParams` subclass (for the types).
        values: Parameter name -> value (after :func:`common.config.params.coerce`).
        names: The parameters to check.
        examples: Parameter name -> a registry value, shown when a value has the wrong type.

    Raises:
        ParameterError: for the first parameter (in ``names`` order) that breaks its schema:
            ``Parameter 'epochs' expects an integer like 9, got 'abc'.`` for a wrong type,
            ``Parameter 'batch_size' must be an integer of at least 1; got 0.`` otherwise.
    """
    names = tuple(names)
    schema = experiment_schema(params_class, names)
    errors = list(Validator(schema).iter_errors({name: values[name] for name in names}))
    if not errors:
        return
    order = {name: index for index, name in enumerate(names)}
    error = min(errors, key=lambda e: order.get(str(e.absolute_path[0]), len(order)) if e.absolute_path else len(order))
    name = str(error.absolute_path[0])
    expected = schema["properties"][name]
    if error.validator == "type" and len(error.absolute_path) == 1:
        kinds = expected["type"] if isinstance(expected["type"], list) else [expected["type"]]
        like = f"like {examples[name]!r}" if examples.get(name) is not None else "or null"
        kind = " or ".join(TYPE_WORDS[k] for k in kinds if k != "null")
        raise ParameterError(f"Parameter {name!r} expects {kind} {like}, got {values[name]!r}.")
    raise ParameterError(f"Parameter {name!r} must be {describe(expected)}; got {values[name]!r}.")
