"""api/responses.py: an object assembled from stored JSON is the JSON orjson makes of the values;
the live streams send without a cancel scope per message unless a send timeout is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message

from api.responses import LiveStream, json_object

CASES: list[tuple[dict[str, list[Any]], dict[str, Any]]] = [
    ({"items": [{"b": 1, "a": [None, 2.5]}, {"k": 'ü"\\n'}]}, {"total": 2, "limit": 10, "offset": 0}),
    ({"items": []}, {"total": 0}),
    ({"items": [1]}, {}),
    ({"a": [True], "b": [{"x": {}}]}, {"c": None}),
]


@pytest.mark.parametrize(("lists", "rest"), CASES)
def test_json_object_is_what_orjson_makes_of_the_decoded_values(
    lists: dict[str, list[Any]], rest: dict[str, Any]
) -> None:
    encoded = {key: [orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values] for key, values in lists.items()}
    made = json_object(encoded, rest)
    decoded = {key: [orjson.loads(v) for v in values] for key, values in encoded.items()}
    assert made == orjson.dumps({**decoded, **rest})
    assert orjson.loads(made) == {**lists, **rest}


async def _sent_through(response: LiveStream, send_blocks: bool) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        if send_blocks:
            await asyncio.sleep(10)
        sent.append(message)

    await response._send_with_timeout(send, {"type": "http.response.body", "body": b"x", "more_body": True})
    return sent


async def test_live_stream_sends_as_it_is_and_keeps_a_send_timeout_when_one_is_set() -> None:
    assert "_send_with_timeout" in vars(EventSourceResponse), "sse-starlette renamed the method LiveStream overrides"

    async def nothing() -> AsyncIterator[bytes]:
        yield b""

    assert len(await _sent_through(LiveStream(nothing()), send_blocks=False)) == 1
    with pytest.raises(SendTimeoutError):
        await _sent_through(LiveStream(nothing(), send_timeout=0.01), send_blocks=True)
