"""The live hub hands each subscriber the changes of its projection (and key) a batch at a time,
cuts off one that falls behind, and the SSE encoding of a batch is the messages one by one."""

from __future__ import annotations

import asyncio

import orjson
from sse_starlette import ServerSentEvent

from adapters.live_hub import LiveHub
from api.routes.live import _message
from projections.ports import DocChange, encode_doc


def change(projection: str, key: str, position: int) -> DocChange:
    return DocChange(projection, key, position, {"job_id": key, "position": position})


async def test_each_subscriber_gets_its_projection_and_key_in_one_batch() -> None:
    hub = LiveHub()
    board, one, fleet = hub.subscribe("job_board"), hub.subscribe("job_detail", "j1"), hub.subscribe("client_fleet")
    hub.publish([change("job_board", "j1", 1), change("job_detail", "j1", 1), change("job_detail", "j2", 2)])
    hub.publish([change("job_board", "j2", 2)])
    assert [(c.key, c.position) for c in await board.get() or []] == [("j1", 1), ("j2", 2)]
    assert [(c.key, c.position) for c in await one.get() or []] == [("j1", 1)]
    waiting = asyncio.create_task(fleet.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # nothing of its projection came
    hub.publish([change("client_fleet", "a", 3)])
    assert [c.key for c in await asyncio.wait_for(waiting, 1) or []] == ["a"]
    assert hub.subscriber_count == 3
    hub.unsubscribe(board)
    assert hub.subscriber_count == 2


async def test_a_subscriber_too_far_behind_is_cut_off_and_told() -> None:
    hub = LiveHub(max_queue=3)
    slow, fast = hub.subscribe("job_board"), hub.subscribe("job_board")
    hub.publish([change("job_board", "a", 1), change("job_board", "b", 2)])
    assert len(await fast.get() or []) == 2
    hub.publish([change("job_board", "c", 3), change("job_board", "d", 4)])  # slow would hold 4 > 3
    assert await slow.get() is None
    assert hub.subscriber_count == 1
    assert [c.key for c in await fast.get() or []] == ["c", "d"]


async def test_a_waiting_subscriber_wakes_when_cut_off() -> None:
    hub = LiveHub(max_queue=1)
    sub = hub.subscribe("job_board")
    waiting = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    hub.publish([change("job_board", "a", 1), change("job_board", "b", 2)])
    assert await asyncio.wait_for(waiting, 1) is None


def test_a_message_is_encoded_as_server_sent_event_encodes_it() -> None:
    doc = change("job_board", "j1", 7)
    expected = ServerSentEvent(data='{"key":"j1","doc":{"job_id":"j1","position":7}}', event="job_board", id="7")
    assert _message(doc, whole=True) == expected.encode()
    tricky = DocChange("job_board", "j2", 8, {"name": "line\nbreak\r\u2028"})
    assert _message(tricky, whole=True).count(b"\r\n") == 4  # id, event, one data line, the blank line


def test_a_message_is_built_from_the_encodings_the_change_shares() -> None:
    """Every subscriber's frame is built from the change's encodings (the document as the runner
    committed it, the patch encoded once); the bytes are what ServerSentEvent gives for them."""
    doc = {"job_id": "m", "status": "running", "clients": ["a"], "round": 2}
    before = encode_doc({**doc, "round": 1})
    changed = DocChange("job_board", "m", 42, doc, before, encoded=encode_doc(doc))
    whole = b'{"key":"m","doc":' + encode_doc(doc) + b"}"  # the key, then the document as stored
    patch = orjson.dumps({"key": "m", "patch": changed.patch})
    for data, is_whole in ((whole, True), (patch, False)):
        expected = ServerSentEvent(id="42", event="job_board", data=data.decode()).encode()
        assert _message(changed, is_whole) == expected
    assert orjson.loads(_message(changed, False).split(b"data: ")[1]) == {
        "key": "m",
        "patch": [{"op": "replace", "path": "/round", "value": 2}],
    }
    # built once per change and variant, for every subscriber that sends it
    assert _message(changed, True) is _message(changed, True)
    assert _message(changed, False) is _message(changed, False)
    assert _message(changed, True) != _message(changed, False)
    deleted = DocChange("job_board", "m", 43, None, before)
    assert orjson.loads(_message(deleted, False).split(b"data: ")[1]) == {"key": "m", "doc": None}


async def test_a_cancelled_wait_leaves_the_subscription_usable() -> None:
    hub = LiveHub()
    sub = hub.subscribe("job_board")
    waiting = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    hub.publish([change("job_board", "a", 1)])  # nobody waits: kept for the next get
    assert [c.key for c in await asyncio.wait_for(sub.get(), 1) or []] == ["a"]
