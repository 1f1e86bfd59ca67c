"""compose/: the observability stack validates offline with the real tools (the Compose binary,
`promtool check config`, `nginx -t`), images are pinned, and every query of the provisioned
Grafana dashboard names a metric the platform really exports (checked against a live scrape)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from flp.wiring import Container
from tests.conftest import job_body, round_body
from tests.deploy.tools import ROOT, compose_config

COMPOSE = ROOT / "compose"
SERVICES = {"mongo", "kafka", "flp", "nginx", "otel-collector", "tempo", "prometheus", "grafana"}


def binary(name: str, *fallbacks: str) -> str:
    found = shutil.which(name) or next((f for f in fallbacks if Path(f).exists()), None)
    assert found, f"{name} is missing: scripts/setup-tools.sh installs it (make test runs it)"
    return found


def test_the_stack_validates_and_pins_its_images() -> None:
    services = compose_config(COMPOSE / "docker-compose.yml")["services"]
    assert set(services) >= SERVICES
    for name, service in services.items():
        image = service.get("image", "")
        if name == "flp":
            continue  # built from this repo
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*", image), f"{name}: image {image!r} is not pinned"
    flp = services["flp"]
    assert flp["deploy"]["replicas"] == 3
    env = flp["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["FLP_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["FLP_STORE_URL"].startswith("mongodb://mongo")
    assert env["FLP_METRICS_TOKEN_FILE"] == "/run/secrets/flp-metrics-token"
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t" * 64)
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text((COMPOSE / "prometheus" / "prometheus.yml").read_text().replace(
        "/run/secrets/flp-metrics-token", str(token)
    ))  # fmt: skip
    result = subprocess.run([binary("promtool"), "check", "config", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
         "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    conf = (COMPOSE / "nginx" / "nginx.conf").read_text().replace("/etc/nginx/tls/", f"{tmp_path}/")
    assert "proxy_buffering off" in conf and "proxy_read_timeout 24h" in conf and "X-Request-ID" in conf
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(
        [binary("nginx", "/usr/sbin/nginx"), "-t", "-c", str(tmp_path / "nginx.conf"), "-g", f"pid {tmp_path}/n.pid;"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


async def test_every_dashboard_query_names_an_exported_metric(api: httpx.AsyncClient, container: Container) -> None:
    dashboard = json.loads((COMPOSE / "grafana" / "dashboards" / "flp.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if "expr" in t]
    assert len(exprs) >= 12
    named = {re.sub(r"_(total|bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"\bflp_[a-z_]+", e)}
    # make the platform do something, then scrape it as Prometheus would
    await api.post("/jobs", json=job_body(job_id="d1"))
    await api.post("/jobs/d1/rounds", json=round_body(1))
    app = create_app(container, manage_lifespan=False)
    scrape = {"Authorization": f"Bearer {container.auth.scrape_credential.decode()}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=scrape) as h:
        text = (await h.get("/metrics")).text
    exported = {f.name for f in text_string_to_metric_families(text)}
    assert not named - exported, f"dashboard queries name metrics the app does not export: {named - exported}"
    datasources = (COMPOSE / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    assert "uid: prometheus" in datasources and "uid: tempo" in datasources
    assert any(p["datasource"]["type"] == "tempo" for p in dashboard["panels"])  # slow spans -> their traces
