"""Query parameters validated as one pydantic model by the route itself, documented as FastAPI
documents a `Query()` model.

Written by hand because FastAPI 0.138 solves a query model on every request through its generic
parameter machinery (per field: an alias lookup, a sequence check of the annotation, a multidict
read; then the model's validation), which in-process was a fifth of `GET /jobs`. Validating
`request.query_params` with the model directly gives the same values, and `parse` turns its errors
into the 422 FastAPI gives (each error's `loc` under `query`); `documented` gives the OpenAPI
parameters and 422 answer FastAPI would write for the model. `tests/api/test_query_model.py` compares both
with a FastAPI route declared the usual way.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], request: Request) -> M:
    """`model` from the request's query string (the last value of a repeated name, as FastAPI)."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


VALIDATION_ERROR = {  # the 422 FastAPI documents for every route with parameters it validates
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """The route arguments that document `model`'s query as FastAPI would: its parameters and
    the 422 answer (`@router.get(path, **documented(Model))`)."""
    return {"openapi_extra": {"parameters": parameters(model)}, "responses": {422: VALIDATION_ERROR}}


def parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI parameters of `model`'s fields, in query (for a route's `openapi_extra`)."""
    schema = model.model_json_schema()
    for name, info in model.model_fields.items():  # what `parse` and this document handle as FastAPI does
        if info.alias or info.validation_alias:
            raise TypeError(f"{model.__name__}.{name}: aliases are not supported")
    if "$defs" in schema or any(_is_array(f) for f in schema.get("properties", {}).values()):
        raise TypeError(f"{model.__name__}: only scalar fields without $defs are supported")
    required = set(schema.get("required", []))
    out = []
    for name, field in schema.get("properties", {}).items():
        field = dict(field)  # (a None default is dropped by FastAPI's OpenAPI model, as for its own)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in field:
            parameter["description"] = field.pop("description")
        parameter["schema"] = field
        out.append(parameter)
    return out


def _is_array(field: dict[str, Any]) -> bool:
    return field.get("type") == "array" or any(_is_array(f) for f in field.get("anyOf", []))
