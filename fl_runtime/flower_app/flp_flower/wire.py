"""How a model travels between the ServerApp and the ClientApps: one packed record per ArrayRecord.

Flower 1.42 sends a message as a tree of objects, one request per object through the SuperLink and
again through each SuperNode: our 4-tensor MLP's ArrayRecord alone is 9 of a train message's 12
objects (the record, 4 Arrays, 4 chunks), and a deployment-mode round moved ~300 such requests.
At the edges only (`PromptGrid` for the ServerApp, `client_app` for the ClientApps), every
ArrayRecord becomes one ConfigRecord holding the arrays as one `.npz` (numpy's own format, read
back with `allow_pickle=False`, so a node's reply cannot smuggle code into the ServerApp) and their
names. Strategies, reports, artifacts and replay only ever see the ArrayRecord: unpacking restores
the same names, dtypes, shapes and bytes. A message that is not packed is left as it is.
"""

from __future__ import annotations

import io
from typing import cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

PACKED = "flp.packed-arrays"
NAMES = "flp.array-names"


class MalformedPackedArrays(ValueError):
    """A packed record that does not hold the arrays it names."""


def pack_arrays(record: ArrayRecord) -> ConfigRecord:
    names = list(record.keys())
    buf = io.BytesIO()
    np.savez(buf, *(record[name].numpy() for name in names))  # positional: any name is safe
    return ConfigRecord({PACKED: buf.getvalue(), NAMES: names})


def unpack_arrays(record: ConfigRecord) -> ArrayRecord:
    names = record[NAMES]
    data = record[PACKED]
    if not isinstance(names, list) or not isinstance(data, bytes):
        raise MalformedPackedArrays("packed arrays need a name list and bytes")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        if len(npz.files) != len(names):
            raise MalformedPackedArrays(f"{len(npz.files)} arrays for {len(names)} names")
        arrays = {str(name): Array(npz[f"arr_{i}"]) for i, name in enumerate(names)}
    return ArrayRecord(arrays)


def is_packed(record: object) -> bool:
    return isinstance(record, ConfigRecord) and set(record.keys()) == {PACKED, NAMES}


def pack(content: RecordDict) -> RecordDict:
    """`content` with each ArrayRecord packed (the same object when it holds none)."""
    if not content.array_records:
        return content
    return RecordDict(
        {key: pack_arrays(record) if isinstance(record, ArrayRecord) else record for key, record in content.items()}
    )


def unpack(content: RecordDict) -> RecordDict:
    """`content` with each packed record an ArrayRecord again (the same object when none is)."""
    if not any(is_packed(record) for record in content.values()):
        return content
    return RecordDict(
        {
            key: unpack_arrays(cast(ConfigRecord, record)) if is_packed(record) else record
            for key, record in content.items()
        }
    )
