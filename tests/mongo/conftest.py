"""Fixtures for the MongoDB adapter tests: the stand-in, or FLP_TEST_MONGODB_URL when set."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.mongo.standin import MongoTestBackend, Recorder


@pytest.fixture
async def backend() -> AsyncIterator[MongoTestBackend]:
    b = MongoTestBackend()
    yield b
    await b.drop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
