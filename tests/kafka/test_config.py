"""Client options for Apache Kafka, Redpanda and managed Kafka (TLS, SASL)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from adapters.kafka_config import client_options
from adapters.kafka_relay import RelayConfig
from config.settings import Settings


def test_plaintext() -> None:
    options = client_options(Settings(kafka_bootstrap_servers="a:9092,b:9092", kafka_client_id="flp-1"))
    assert options == {"bootstrap_servers": "a:9092,b:9092", "client_id": "flp-1", "security_protocol": "PLAINTEXT"}


def test_sasl_over_tls() -> None:
    settings = Settings(
        kafka_bootstrap_servers="broker:9093",
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="scram-sha-512",
        kafka_sasl_username="flp",
        kafka_sasl_password="secret",
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("flp", "secret")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_tls_files_come_from_settings(tmp_path: Path) -> None:
    """FLP_KAFKA_SSL_CAFILE is read (a missing file is an error, not silently the system CAs)."""
    settings = Settings(
        kafka_bootstrap_servers="broker:9093", kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "none.pem"
    )
    with pytest.raises(FileNotFoundError):
        client_options(settings)


def test_unset_bootstrap_is_an_error() -> None:
    with pytest.raises(ValueError):
        client_options(Settings(kafka_bootstrap_servers=None))


def test_relay_config_from_settings() -> None:
    config = RelayConfig.from_settings(Settings(kafka_topic="t"), partitions=12)
    assert (config.topic, config.partitions) == ("t", 12)
    config = RelayConfig.from_settings(Settings(kafka_partitions=9, kafka_replication_factor=3))
    assert (config.partitions, config.replication_factor) == (9, 3)
