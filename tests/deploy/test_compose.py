"""compose/: validated by the Compose binary itself (not by reading YAML text); MongoDB runs as
a replica set with a health check the platform waits on, and the platform points at it."""

from __future__ import annotations

from typing import Any

from adapters.mongo_client import database_name
from tests.deploy.tools import ROOT, compose_config

COMPOSE = ROOT / "compose" / "docker-compose.yml"


def services() -> dict[str, Any]:
    model = compose_config(COMPOSE)
    found: dict[str, Any] = model["services"]
    return found


def test_mongo_is_a_replica_set_with_a_health_check_that_initiates_it() -> None:
    mongo = services()["mongo"]
    assert "--replSet" in mongo["command"] and "rs0" in mongo["command"]
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in probe and 'host: "mongo:27017"' in probe and "isWritablePrimary" in probe
    assert {"/data/db", "/data/configdb"} <= {v["target"] for v in mongo["volumes"]}


def test_platform_waits_for_a_healthy_mongo_and_uses_it() -> None:
    flp = services()["flp"]
    assert flp["depends_on"]["mongo"]["condition"] == "service_healthy"
    env = flp["environment"]
    url = env["FLP_STORE_URL"]
    assert url.startswith("mongodb://mongo:27017/") and "replicaSet=rs0" in url
    assert database_name(url) == "flp"
    assert env["FLP_MONGODB_WRITE_CONCERN"] == env["FLP_MONGODB_READ_CONCERN"] == "majority"
    assert "healthcheck" in flp
