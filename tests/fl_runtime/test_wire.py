"""The model's wire format (`flp_flower.wire`) and the Grid edge that applies it, with real Flower
records and messages: fewer objects per message, the same arrays back, nothing executable."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from flwr.supercore.task_identity import TaskIdentity

from fl_runtime.app_dir import APP_DIR

sys.path.insert(0, str(APP_DIR))

from flp_flower import model, prompt_grid, wire  # noqa: E402


def _train_content(seed: int = 3) -> RecordDict:
    arrays = ArrayRecord(model.new_model(seed).state_dict())
    return RecordDict({"arrays": arrays, "config": ConfigRecord({"lr": 0.1, "server-round": 2})})


def test_packing_sends_a_third_of_the_objects_and_restores_the_same_arrays() -> None:
    content = _train_content()
    packed = wire.pack(content)
    assert len(get_all_nested_objects(packed)) * 3 <= len(get_all_nested_objects(content))
    assert wire.is_packed(packed["arrays"]) and packed["config"] is content["config"]
    back = wire.unpack(packed)
    original, restored = content["arrays"], back["arrays"]
    assert isinstance(original, ArrayRecord) and isinstance(restored, ArrayRecord)
    assert list(restored.keys()) == list(original.keys())
    for name in original:
        a, b = original[name].numpy(), restored[name].numpy()
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert restored.object_id == original.object_id  # byte for byte what the strategy sent
    assert list(back.keys()) == ["arrays", "config"]


def test_content_without_models_and_unpacked_content_pass_unchanged() -> None:
    metrics_only = RecordDict({"metrics": MetricRecord({"eval_acc": 0.5})})
    assert wire.pack(metrics_only) is metrics_only
    content = _train_content()
    assert wire.unpack(content) is content  # an unpacked message (e.g. from an older app) still works


def test_a_packed_record_cannot_carry_pickled_objects() -> None:
    buf = io.BytesIO()
    np.savez(buf, np.array([{"not": "numbers"}], dtype=object))
    forged = RecordDict({"arrays": ConfigRecord({wire.PACKED: buf.getvalue(), wire.NAMES: ["w"]})})
    with pytest.raises(ValueError, match="pickle"):
        wire.unpack(forged)
    short = wire.pack(_train_content())["arrays"]
    assert isinstance(short, ConfigRecord)
    lying = RecordDict({"arrays": ConfigRecord({wire.PACKED: short[wire.PACKED], wire.NAMES: ["only-one"]})})
    with pytest.raises(wire.MalformedPackedArrays):
        wire.unpack(lying)


class RecordingGrid:
    """Keeps what was pushed; answers each message with its own content (packed, as a ClientApp does)."""

    def __init__(self) -> None:
        self.pushed: list[Message] = []

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        assert isinstance(messages, list)  # Flower's Grid refuses an iterator it cannot size
        self.pushed.extend(messages)
        return [f"m{i}" for i in range(len(messages))]

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [Message(content=m.content, reply_to=m) for m in self.pushed]


@pytest.fixture
def run_identity() -> Iterator[None]:
    """What Flower sets in a ServerApp process (messages are stamped with it); restored after."""
    saved = TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


@pytest.mark.usefixtures("run_identity", "flower_pull_defaults")
def test_the_grid_packs_what_it_pushes_and_unpacks_what_it_pulls() -> None:
    inner = RecordingGrid()
    grid = prompt_grid.PromptGrid(inner)
    content = _train_content()
    sent = Message(content=content, dst_node_id=5, message_type="train", group_id="2")
    ids = list(grid.push_messages([sent]))
    assert ids == ["m0"]
    on_wire = inner.pushed[0]
    assert wire.is_packed(on_wire.content["arrays"])
    assert on_wire.metadata.dst_node_id == 5 and on_wire.metadata.message_type == "train"
    assert on_wire.metadata.group_id == "2"
    assert sent.content is content  # the strategy's own message is left as it was
    (reply,) = grid.pull_messages(ids)
    arrays = reply.content["arrays"]
    assert isinstance(arrays, ArrayRecord) and arrays.object_id == content["arrays"].object_id
