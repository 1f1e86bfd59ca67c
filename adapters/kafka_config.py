"""aiokafka client options from flp settings: one place for bootstrap servers, TLS and SASL.

Plain aiokafka keyword arguments, so Apache Kafka, Redpanda and managed Kafka (SASL/SCRAM,
SASL/PLAIN over TLS) work unchanged. The producer is never idempotent: tansu (the test broker)
rejects InitProducerId, and consumers dedupe by position anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context

from config.settings import Settings

DEFAULT_PARTITIONS = 6


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments shared by aiokafka producers, consumers and admin clients."""
    if not settings.kafka_bootstrap_servers:
        raise ValueError("FLP_KAFKA_BOOTSTRAP_SERVERS is not set")
    protocol = settings.kafka_security_protocol.upper()
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        # the system CAs unless FLP_KAFKA_SSL_CAFILE names a private CA; a client certificate
        # (mutual TLS) with FLP_KAFKA_SSL_CERTFILE / FLP_KAFKA_SSL_KEYFILE
        options["ssl_context"] = create_ssl_context(
            cafile=_path(settings.kafka_ssl_cafile),
            certfile=_path(settings.kafka_ssl_certfile),
            keyfile=_path(settings.kafka_ssl_keyfile),
        )
    if protocol.startswith("SASL"):
        options["sasl_mechanism"] = (settings.kafka_sasl_mechanism or "PLAIN").upper()
        options["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        options["sasl_plain_password"] = password.get_secret_value() if password is not None else None
    return options


def _path(path: Path | None) -> str | None:
    return str(path) if path is not None else None
