"""The platform starts the relay when FLP_KAFKA_BOOTSTRAP_SERVERS is set; health shows its lag."""

from __future__ import annotations

from pathlib import Path

from adapters.kafka_relay import KafkaRelay
from adapters.kafka_tansu import TansuBroker
from api.routes.health import health_report
from config.settings import Settings
from domain.commands import StartJob
from domain.events import JobConfig
from flp.wiring import build_container
from tests.kafka.conftest import positions_cover, read_topic


async def test_container_runs_relay_and_reports_lag(broker: TansuBroker, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "flp", flower_mode="off", api_port=0, kafka_bootstrap_servers=broker.bootstrap_servers
    )
    container = await build_container(settings)
    await container.start()
    try:
        relay = container.relay
        assert isinstance(relay, KafkaRelay)
        config = JobConfig(name="wired", rounds=2, min_clients=1, num_clients=1, runtime="external")
        await container.jobs.execute("w1", StartJob(job_id="w1", config=config))
        head = await container.store.head_position()
        await relay.wait_published(head)
        assert await relay.lag() == 0
        report = await health_report(container)
        assert report.services["kafka_relay"]["lag"] == 0
        assert report.services["kafka_relay"]["state"] == "running"
    finally:
        await container.stop()
    messages = await read_topic(broker.bootstrap_servers, positions_cover(set(range(1, head + 1))), partitions=6)
    assert [m.value["type"] for m in messages if m.key == "job-w1"] == ["flp.JobCreated.v1"]
