"""The event value space: what a value inside an event may be, defined once.

Every value an event carries must survive the trip to every consumer unchanged: the canonical
JSON the hash chain covers, MongoDB's BSON, JSON Schema / CloudEvents readers and JavaScript.
So a value is one of
- `None`, `bool`;
- an integer with |n| <= 2**53 - 1 (exact in JavaScript, and well inside MongoDB's int64);
- a finite float (JSON has no NaN or Infinity; a parser that reads `1e999` gets infinity);
- a string of valid Unicode (no lone surrogates: they have no UTF-8 form), at most
  MAX_TEXT characters (a mapping key at most MAX_KEY);
- a list or a string-keyed mapping of values, at most MAX_ITEMS entries, nested at most
  MAX_DEPTH deep.

Commands enforce it at the edge (`Valued`, and the typed fields below), so a caller gets a 4xx
naming the field; the event stores enforce it again on the encoded bytes (persistence.encoding)
so that nothing they cannot read back is ever stored.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, PlainValidator, WithJsonSchema, model_validator

MAX_SAFE_INT = 2**53 - 1
MAX_TEXT = 100_000
MAX_KEY = 200
MAX_ITEMS = 10_000
MAX_DEPTH = 16


def violation(value: Any, path: str = "", depth: int = 0) -> str | None:
    """The first place `value` leaves the value space, as "path: reason"; None if it is inside."""
    where = path or "value"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else f"{where}: integer outside ±(2**53-1)"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where}: not a finite number"
    if isinstance(value, str):
        return _text_problem(value, MAX_TEXT, where)
    if isinstance(value, BaseModel):
        value = value.__dict__
    if depth >= MAX_DEPTH:
        return f"{where}: nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        if len(value) > MAX_ITEMS:
            return f"{where}: more than {MAX_ITEMS} entries"
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}: keys must be strings"
            if (bad := _text_problem(key, MAX_KEY, f"{where} key {key[:40]!r}")) is not None:
                return bad
            if (bad := violation(item, f"{path}.{key}" if path else key, depth + 1)) is not None:
                return bad
        return None
    if isinstance(value, list | tuple):
        if len(value) > MAX_ITEMS:
            return f"{where}: more than {MAX_ITEMS} items"
        for i, item in enumerate(value):
            if (bad := violation(item, f"{path}.{i}" if path else str(i), depth + 1)) is not None:
                return bad
        return None
    return f"{where}: {type(value).__name__} is not a JSON value"


def _text_problem(text: str, limit: int, where: str) -> str | None:
    if len(text) > limit:
        return f"{where}: longer than {limit} characters"
    if text.isascii():  # the common case, without an encode
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{where}: not valid Unicode (a lone surrogate)"
    return None


def _valid_text(text: str) -> str:
    if (bad := _text_problem(text, MAX_TEXT, "string")) is not None:
        raise ValueError(bad)
    return text


# Typed fields: the checks pydantic runs in its core, and that the OpenAPI schema documents.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"  # job, client and node ids
EntityId = Annotated[str, Field(pattern=ID_PATTERN, max_length=128)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
SafeInt = Annotated[int, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
PositiveInt = Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_valid_text)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY), AfterValidator(_valid_text)]
Metrics = Annotated[dict[Key, FiniteFloat], Field(max_length=1_000)]


def _scalar(value: Any) -> bool | int | float | str:
    """A hyper-parameter value: kept as given (no int -> float coercion), inside the value space."""
    if not isinstance(value, bool | int | float | str):
        raise ValueError("must be a boolean, number or string")
    if (bad := violation(value, "value")) is not None:
        raise ValueError(bad)
    return value


Scalar = Annotated[
    bool | int | float | str,
    PlainValidator(_scalar),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"type": "integer", "minimum": -MAX_SAFE_INT, "maximum": MAX_SAFE_INT},
                {"type": "number"},
                {"type": "string", "maxLength": MAX_TEXT},
            ]
        }
    ),
]


class Valued(BaseModel):
    """A model whose every field lies in the value space (checked after field validation, so a
    field no typed constraint covers is still refused, with its path)."""

    @model_validator(mode="after")
    def _in_value_space(self) -> Valued:
        if (bad := violation(self.__dict__)) is not None:
            raise ValueError(bad)
        return self
