"""Properties of the pure verifier: an untouched history verifies; any single tampering of a
random multi-stream history is found, at the right place; seals catch what the chain cannot
(a recomputed chain, the newest event deleted, events of different streams trading positions)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.verify import VerifyReport
from audit.verify import verify_events as verify_all
from persistence.chain import GENESIS_HASH, chain_hash
from persistence.records import RecordedEvent
from persistence.seals import seal_record

KEY = b"k" * 32


def verify_events(events: list[RecordedEvent], **kwargs: Any) -> VerifyReport:
    return verify_all(events, decode=False, **kwargs)  # synthetic "Thing" events: chain and seals only


def history(streams: list[int]) -> list[RecordedEvent]:
    """Interleaved streams: `streams[i]` is the stream of the event at position i + 1."""
    heads: dict[str, tuple[int, str]] = {}
    out = []
    for i, s in enumerate(streams):
        stream = f"job-{s}"
        version, prev = heads.get(stream, (0, GENESIS_HASH))
        version += 1
        data, meta = {"n": i, "s": s}, {"actor": "admin", "recorded_at": f"2026-01-01T00:00:{i % 60:02d}Z"}
        digest = chain_hash(prev, stream, version, f"e{i}", "Thing", 1, data, meta)
        out.append(RecordedEvent(f"e{i}", stream, version, i + 1, "Thing", 1, data, meta, prev, digest))
        heads[stream] = (version, digest)
    return out


streams_st = st.lists(st.integers(0, 3), min_size=2, max_size=40)


@given(streams_st)
def test_untouched_history_verifies(streams: list[int]) -> None:
    events = history(streams)
    seals = {e.position: seal_record(KEY, e) for e in events}
    report = verify_events(events, seal_key=KEY, seals=seals)
    assert report.ok and report.events_checked == len(events) and report.head_position == len(events)


@settings(max_examples=300)
@given(streams_st, st.data())
def test_any_single_tampering_is_found_where_it_happened(streams: list[int], data: st.DataObject) -> None:
    events = history(streams)
    i = data.draw(st.integers(0, len(events) - 1), label="target")
    kind = data.draw(st.sampled_from(["data", "metadata", "type", "delete", "swap", "event_id"]), label="kind")
    tampered = list(events)
    target = events[i]
    where = target.position
    if kind == "data":
        tampered[i] = target._replace(data={**target.data, "n": -1})
    elif kind == "metadata":
        tampered[i] = target._replace(metadata={**target.metadata, "actor": "mallory"})
    elif kind == "type":
        tampered[i] = target._replace(type="Other")
    elif kind == "event_id":
        tampered[i] = target._replace(event_id="forged")
    elif kind == "delete":
        del tampered[i]
        if i == len(events) - 1:  # the newest event: only the seals know it existed
            report = verify_events(tampered)
            assert report.ok
            sealed = verify_events(tampered, seal_key=KEY, seals={e.position: seal_record(KEY, e) for e in events})
            assert not sealed.ok and sealed.first_break is not None and sealed.first_break.position == where
            return
        where = target.position + 1  # the gap shows at the next position
    elif kind == "swap":
        j = data.draw(st.integers(0, len(events) - 1).filter(lambda j: j != i), label="other")
        a, b = sorted((i, j))
        tampered[a], tampered[b] = events[b]._replace(position=a + 1), events[a]._replace(position=b + 1)
        where = a + 1
        if events[a].stream_id != events[b].stream_id:  # streams may keep their order: positions are sealed
            sealed = verify_events(tampered, seal_key=KEY, seals={e.position: seal_record(KEY, e) for e in events})
            assert not sealed.ok and sealed.first_break is not None and sealed.first_break.position == where
            return
    report = verify_events(tampered)
    assert not report.ok
    assert report.first_break is not None and report.first_break.position == where, report.first_break


@given(streams_st)
def test_a_recomputed_chain_passes_alone_but_not_against_the_seals(streams: list[int]) -> None:
    events = history(streams)
    seals = {e.position: seal_record(KEY, e) for e in events}
    first = events[0]
    forged = [first._replace(data={"n": 999})]
    prev = {first.stream_id: GENESIS_HASH}
    rebuilt = []
    for e in forged + events[1:]:
        p = prev.get(e.stream_id, GENESIS_HASH)
        h = chain_hash(p, e.stream_id, e.version, e.event_id, e.type, e.schema_version, e.data, e.metadata)
        rebuilt.append(e._replace(prev_hash=p, hash=h))
        prev[e.stream_id] = h
    assert verify_events(rebuilt).ok
    sealed = verify_events(rebuilt, seal_key=KEY, seals=seals)
    assert not sealed.ok and sealed.first_break is not None and sealed.first_break.position == 1
