"""Model artifacts in MongoDB GridFS, content-addressed by sha256 (`fl_runtime.ports.ArtifactStore`).

The adapter writes the GridFS layout itself (bucket `artifacts`: `artifacts.files` +
`artifacts.chunks`, 255 KiB chunks, the spec's indexes), so the same code runs on the server and
on the test stand-in, and any GridFS tool or driver (`mongofiles`, `AsyncGridFSBucket`) can read
the files: file `_id` and `filename` are the sha256.

Put is idempotent and crash-safe without transactions: chunks first (unique (files_id, n), so
concurrent puts of the same bytes write each chunk once), the files document last. A file
exists only once its files document does; get checks length and sha256 before returning bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from datetime import UTC, datetime

from pymongo.errors import BulkWriteError, DuplicateKeyError

from adapters.mongo_client import ConnectionHolder, MongoCollection, MongoConnection, collection

BUCKET = "artifacts"
CHUNK_SIZE = 255 * 1024  # the GridFS default
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DUPLICATE_KEY = 11000


class MongoArtifactStore(ConnectionHolder):
    def __init__(self, connection: MongoConnection, bucket: str = BUCKET) -> None:
        super().__init__(connection)
        self.files: MongoCollection = collection(connection.db, f"{bucket}.files")
        self.chunks: MongoCollection = collection(connection.db, f"{bucket}.chunks")

    async def open(self) -> MongoArtifactStore:
        await ensure_artifact_indexes(self.files, self.chunks)
        self._hold()  # once open succeeded: close() gives the connection back
        return self

    async def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if await self.exists(sha):
            return sha
        chunks = [
            {"files_id": sha, "n": n, "data": data[offset : offset + CHUNK_SIZE]}
            for n, offset in enumerate(range(0, len(data), CHUNK_SIZE))
        ]
        if chunks:
            try:
                await self.chunks.insert_many(chunks, ordered=False)
            except BulkWriteError as exc:  # chunks a concurrent or crashed put already wrote
                if any(err.get("code") != _DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                    raise
        with contextlib.suppress(DuplicateKeyError):  # a concurrent put of the same bytes won
            await self.files.insert_one(
                {
                    "_id": sha,
                    "filename": sha,
                    "length": len(data),
                    "chunkSize": CHUNK_SIZE,
                    "uploadDate": datetime.now(UTC),
                    "metadata": {"sha256": sha, "content_type": "application/octet-stream"},
                }
            )
        return sha

    async def get(self, sha256: str) -> bytes:
        if not _SHA256.match(sha256):
            raise KeyError(sha256)
        meta = await self.files.find_one({"_id": sha256})
        if meta is None:
            raise KeyError(sha256)
        parts = await self.chunks.find({"files_id": sha256}, {"n": 1, "data": 1}, sort=[("n", 1)]).to_list(None)
        data = b"".join(bytes(p["data"]) for p in parts)
        if [p["n"] for p in parts] != list(range(len(parts))) or len(data) != meta["length"]:
            raise OSError(f"artifact {sha256}: chunks missing or damaged")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise OSError(f"artifact {sha256}: content does not match its sha256")
        return data

    async def exists(self, sha256: str) -> bool:
        if not _SHA256.match(sha256):
            return False
        return await self.files.find_one({"_id": sha256}, {"_id": 1}) is not None


async def ensure_artifact_indexes(files: MongoCollection, chunks: MongoCollection) -> None:
    """The indexes the GridFS spec asks drivers to create."""
    await files.create_index([("filename", 1), ("uploadDate", 1)], name="filename_1_uploadDate_1")
    await chunks.create_index([("files_id", 1), ("n", 1)], name="files_id_1_n_1", unique=True)
