"""What the command groups share: exit codes, the handler and subparsers types, argument types,
and the Avro encoders a command produces with."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from streamproc.adapters.avro.registry import make_registry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde, SchemaRegistry
from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.config.pipeline import PipelineSpec
from streamproc.config.settings import Settings
from streamproc.errors import ConfigError
from streamproc.tools.demo import Encode

EXIT_FAILURE = 1  # the command ran and found something wrong: drift, bad rows, failed sends
EXIT_CONFIG = 2  # usage or configuration: a setting, a declaration, an argument, a file
EXIT_INFRA = 3  # Kafka, Redis or the registry unreachable or failing
EXIT_CODES = (
    "exit codes: 0 done; 1 failure (what the command checks is wrong, or sends failed); "
    "2 usage or configuration (an argument, a setting, a declaration or a file to fix); "
    "3 infrastructure (Kafka, Redis or the schema registry unreachable or failing)"
)

Command: TypeAlias = Callable[[argparse.Namespace, Settings], int]
# A string: argparse's subparsers action is generic only to the type checker.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a whole number ≥ 1")
    return value


def share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a share between 0 and 1")
    return value


def raw_encoder(settings: Settings, spec: PipelineSpec) -> Encode:
    """Encodes a raw record as a producer would: wire format, the source topic's schema."""
    return encoder(settings, spec.source.topic, spec.source.schema_name)


def label_encoder(settings: Settings, spec: PipelineSpec) -> Encode | None:
    labels = spec.models.labels if spec.models else None
    return encoder(settings, labels.topic, labels.schema_name) if labels else None


def encoder(settings: Settings, topic: str, schema: str) -> Encode:
    catalog = SchemaCatalog.load(settings.schemas_dir)
    serde = AvroSerde(catalog, registry(settings, catalog))
    return lambda record: serde.encode(topic, schema, record)


def registry(settings: Settings, catalog: SchemaCatalog) -> SchemaRegistry:
    return make_registry(
        catalog,
        settings.schema_registry_url,
        settings.schema_registry_secret(),
        settings.schema_registry_ca(),
    )


def require_topics(settings: Settings, topics: set[str], asked_by: str = "") -> None:
    """Kafka answers (else InfraError) and has every one of `topics`; ConfigError naming the
    missing ones otherwise: the broker does not create topics, so records for one would wait,
    then fail."""
    admin = KafkaAdmin(settings.kafka_connection(), timeout_s=settings.kafka_timeout_s)
    absent = topics - set(admin.list_topic_names())
    if absent:
        raise ConfigError(
            f"{asked_by}no topic {', '.join(sorted(absent))} on {settings.kafka_bootstrap}; "
            "`streamproc topics apply` creates the declared ones"
        )
