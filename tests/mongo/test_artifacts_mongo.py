"""GridFS artifact store: content addressing, chunking, idempotent and concurrent puts, damage."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from adapters.mongo_artifact_store import CHUNK_SIZE, MongoArtifactStore
from tests.mongo.standin import MongoTestBackend


async def open_store(backend: MongoTestBackend) -> MongoArtifactStore:
    return await MongoArtifactStore(backend.connect()).open()


async def test_put_get_exists_round_trip_over_several_chunks(backend: MongoTestBackend) -> None:
    store = await open_store(backend)
    try:
        data = os.urandom(2 * CHUNK_SIZE + 123)
        sha = await store.put(data)
        assert sha == hashlib.sha256(data).hexdigest()
        assert await store.exists(sha)
        assert await store.get(sha) == data
        db = backend.database()
        meta = await db["artifacts.files"].find_one({"_id": sha})
        assert meta is not None
        assert (meta["filename"], meta["length"], meta["chunkSize"]) == (sha, len(data), CHUNK_SIZE)
        chunks = await db["artifacts.chunks"].find({"files_id": sha}, sort=[("n", 1)]).to_list(None)
        assert [c["n"] for c in chunks] == [0, 1, 2] and len(chunks[2]["data"]) == 123
        if backend.real:  # any GridFS reader understands the layout
            from gridfs import AsyncGridFSBucket

            stream = await AsyncGridFSBucket(db, bucket_name="artifacts").open_download_stream(sha)  # type: ignore[arg-type]
            assert await stream.read() == data
    finally:
        await store.close()


async def test_empty_artifact(backend: MongoTestBackend) -> None:
    store = await open_store(backend)
    try:
        sha = await store.put(b"")
        assert await store.get(sha) == b""
    finally:
        await store.close()


async def test_puts_are_idempotent_even_concurrently(backend: MongoTestBackend) -> None:
    a, b = await open_store(backend), await open_store(backend)
    try:
        data = os.urandom(CHUNK_SIZE + 1)
        shas = await asyncio.gather(*(s.put(data) for s in (a, b, a, b)))
        assert len(set(shas)) == 1
        db = backend.database()
        assert await db["artifacts.files"].count_documents({}) == 1
        assert await db["artifacts.chunks"].count_documents({}) == 2
        assert await b.get(shas[0]) == data
    finally:
        await a.close()
        await b.close()


async def test_missing_unknown_and_damaged(backend: MongoTestBackend) -> None:
    store = await open_store(backend)
    try:
        with pytest.raises(KeyError):
            await store.get("0" * 64)
        with pytest.raises(KeyError):
            await store.get("not-a-sha")
        assert not await store.exists("not-a-sha")
        sha = await store.put(b"model weights")
        await backend.database()["artifacts.chunks"].update_one({"files_id": sha}, {"$set": {"data": b"tampered!!!!!"}})
        with pytest.raises(OSError, match="does not match"):
            await store.get(sha)
    finally:
        await store.close()
