"""Producer SDK: the service's STREAMPROC_* environment, read through its settings, so that a
producer or a reader reaches the same brokers, with the same security and schemas, as the
worker beside it. The one module of the SDK that reads the settings (the import contract
"Only the worker, the cli and the SDK's environment read the settings")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamproc.config.kafka import KafkaConnection
from streamproc.config.settings import load_settings
from streamproc.producer.schemas import Schemas


@dataclass(frozen=True, slots=True)
class Environment:
    """What the SDK takes from the settings."""

    kafka: KafkaConnection  # STREAMPROC_KAFKA_*: brokers, TLS, SASL
    schemas: Schemas  # STREAMPROC_SCHEMAS_DIR, STREAMPROC_SCHEMA_REGISTRY_*
    pipeline: Path  # STREAMPROC_PIPELINE: the topics the service reads


def read_environment() -> Environment:
    """ConfigError names a bad variable and the rule it broke."""
    settings = load_settings()
    schemas = Schemas(
        settings.schemas_dir,
        settings.schema_registry_url,
        settings.schema_registry_secret(),
        settings.schema_registry_ca(),
    )
    return Environment(settings.kafka_connection(), schemas, settings.pipeline)
