"""api/query_model.py: the job board's query, parsed by the route itself, answers and documents
exactly as the same model declared as FastAPI's `Annotated[Model, Query()]`."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, Field

from api import query_model
from api.app import create_app
from api.errors import install_error_handlers
from api.routes.jobs import BoardQuery
from flp.wiring import Container


def both() -> tuple[FastAPI, FastAPI]:
    declared, parsed = FastAPI(), FastAPI()
    install_error_handlers(declared)
    install_error_handlers(parsed)

    @declared.get("/board")
    async def by_fastapi(page: Annotated[BoardQuery, Query()]) -> dict[str, Any]:
        return page.model_dump()

    @parsed.get("/board", **query_model.documented(BoardQuery))
    async def by_hand(request: Request) -> dict[str, Any]:
        return query_model.parse(BoardQuery, request).model_dump()

    return declared, parsed


QUERIES = [
    "",
    "limit=5&offset=7&status=running",
    "limit=1&limit=3",  # repeated: the last one
    "unknown=1&limit=2",
    "limit=0",
    "limit=1001",
    "limit=abc",
    "offset=-1",
    "offset=1.5",
    "status=nope",
    "status=",
    "limit=2000&offset=-1&status=x",
    "limit=%20",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_answers_are_fastapis(query: str) -> None:
    answers = []
    for app in both():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.get(f"/board?{query}")
            answers.append((r.status_code, r.headers["content-type"], r.json()))
    assert answers[0] == answers[1]


def test_documented_as_fastapi_documents_the_model() -> None:
    declared, parsed = both()
    assert (
        parsed.openapi()["paths"]["/board"]["get"]["parameters"]
        == (declared.openapi()["paths"]["/board"]["get"]["parameters"])
    )


def test_the_job_board_documents_its_query_as_fastapi_would(container: Container) -> None:
    declared, _ = both()
    board = create_app(container, manage_lifespan=False).openapi()["paths"]["/jobs"]["get"]
    assert board["parameters"] == declared.openapi()["paths"]["/board"]["get"]["parameters"]


class WithList(BaseModel):
    tags: list[str] = []


class WithAlias(BaseModel):
    page_size: int = Field(10, alias="pageSize")


class Colour(enum.Enum):
    RED = "red"


class WithEnum(BaseModel):
    colour: Colour | None = None


@pytest.mark.parametrize("model", [WithList, WithAlias, WithEnum])
def test_models_it_cannot_parse_as_fastapi_would_are_refused(model: type[BaseModel]) -> None:
    with pytest.raises(TypeError):
        query_model.documented(model)
