"""All configuration, from environment variables with the FLP_ prefix (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLP_", extra="ignore")

    # storage
    data_dir: Path = Path(".flp")
    store_url: str | None = Field(
        default=None, description="sqlite:///path or mongodb://...; default sqlite in data_dir"
    )
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    mongodb_database: str | None = None
    mongodb_write_concern: str = "majority"
    mongodb_read_concern: str = "majority"

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    api_url: str | None = Field(default=None, description="a running flp server; CLI talks to it when set")
    public_url: str | None = Field(default=None, description="URL the FL runtime reports back to")
    access_log: bool = Field(default=False, description="uvicorn's line per request (a reverse proxy usually logs)")
    max_body_bytes: int = 1_048_576
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = 600
    rate_limit_storage: str = Field(
        default="memory://", description="a `limits` storage URI; redis://… shares the counts between replicas"
    )

    # replicas: services that must run once (projections, Kafka relay, Flower runtime, seal copy)
    # run on the replica holding their lease; another takes over within about 1.3 x the TTL
    lease_ttl_s: float = Field(default=5.0, gt=0.2, le=300, description="how long a silent owner keeps a service")
    follow_interval_s: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="the longest a replica not owning the projections waits before it looks for their commits",
    )
    replica_id: str | None = Field(default=None, description="this replica's name in leases; default host:pid:random")

    # auth
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path | None = Field(default=None, description="HS256 secret in a file (created if missing)")
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "flp"
    jwt_audience: str = "flp-api"
    jwt_ttl_seconds: int = 3600
    jwt_leeway_seconds: int = 30
    auth_enabled: bool = True
    auth_cache_seconds: float = Field(
        default=5.0, ge=0, description="how long a user/API key change made by another process may take to apply"
    )
    token: SecretStr | None = Field(default=None, description="FLP_TOKEN: the bearer token the CLI sends")

    # observability (tracing itself is configured by the standard OTEL_* variables)
    metrics_token_file: Path | None = Field(
        default=None, description="scrape credential for GET /metrics; default data_dir/secrets/metrics-token"
    )
    metrics_port: int | None = Field(default=None, description="a separate, unauthenticated /metrics listener (off)")
    metrics_host: str = Field(default="127.0.0.1", description="where the separate metrics listener binds")

    # audit
    audit_seal: bool = Field(default=True, description="seal every appended event with an HMAC (tamper evidence)")
    audit_seal_key_file: Path | None = Field(
        default=None, description="HMAC key for seals; default data_dir/secrets/audit-seal.key (keep it off the store)"
    )

    # Flower runtime
    flower_mode: Literal["simulation", "deployment", "remote", "off"] = "simulation"
    flower_superlink: str | None = Field(default=None, description="host:port of a remote SuperLink's Control API")
    flower_supernodes: int = 3
    flower_reply_timeout_s: float = 120.0
    flower_host: str = Field(
        default="127.0.0.1", description="where the owned SuperLink listens (0.0.0.0 or an interface for devices)"
    )
    flower_port: int | None = Field(default=None, description="the owned SuperLink's port; default a free one")
    flower_secure: bool | None = Field(
        default=None,
        description="TLS + SuperNode authentication (flp pki init); default on unless FLP_FLOWER_HOST is loopback",
    )
    flower_ca_file: Path | None = Field(default=None, description="CA of a remote secure SuperLink")

    @property
    def flower_secured(self) -> bool:
        if self.flower_secure is not None:
            return self.flower_secure
        if self.flower_mode == "remote":
            return self.flower_ca_file is not None
        return self.flower_host not in ("127.0.0.1", "localhost", "::1")

    # Kafka
    kafka_bootstrap_servers: str | None = None
    kafka_topic: str = "flp.events"
    kafka_client_id: str = "flp"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_partitions: int = Field(default=6, ge=1, description="fixed: a key never moves partition")
    kafka_replication_factor: int = Field(default=1, ge=1, description="use 3 in production")
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.data_dir / 'flp.db').as_posix()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"
