"""Config: every knob, from STREAMPROC_* environment variables, validated once at start.

`python -m streamproc.config.settings` prints the configuration reference (docs/configuration.md,
written by `make docs`) from the fields below, so the page cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamproc.errors import ConfigError

ENV_PREFIX = "STREAMPROC_"
# Good for tests and demos only: a worker started with it logs a warning.
DEV_PII_KEY = "streamproc-development-key-not-secret"
_HOST_PORT = re.compile(r"^[\w.\-]+:\d{1,5}$")


class Settings(BaseSettings):
    """The worker's and the CLI's configuration; frozen so nothing changes it behind our back."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="comma-separated host:port list of Kafka brokers"
    )
    kafka_timeout_s: float = Field(
        15.0,
        gt=0,
        le=300,
        description="seconds Kafka has to answer admin requests (topics, start-up checks)",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis://, rediss:// (TLS) or unix:// URL; an ACL user and password go in "
        "it (redis://user:password@host:6379/0), TLS options in its query string",
    )
    redis_cluster: bool = Field(
        False, description="the URL names a node of a Redis Cluster (keys are hash-tagged)"
    )
    schema_registry_url: str | None = Field(
        None, description="http(s):// URL of a Confluent-compatible registry; unset: embedded"
    )
    schema_registry_auth: SecretStr | None = Field(
        None, description="user:password for the registry's basic auth"
    )
    pipeline: Path = Field(
        Path("pipelines/shop_orders.yaml"), description="the pipeline declaration to run"
    )
    pii_key: SecretStr = Field(
        SecretStr(DEV_PII_KEY),
        description="secret key of the keyed hash of PII (e-mails); the default is a development "
        "key the worker warns about: set your own in production",
    )
    redis_namespace: str = Field(
        "streamproc",
        pattern=r"^[A-Za-z0-9:._-]+$",
        description="prefix of every Redis key; a new one starts from empty state (for a replay)",
    )
    schemas_dir: Path = Field(Path("schemas"), description="folder of the `*.avsc` schemas")
    topics_dir: Path = Field(
        Path("topics"), description="folder of the `*.yaml` topic declarations"
    )
    data_dir: Path = Field(Path(".streamproc"), description="folder for the worker's local state")
    app_id: str = Field(
        "streamproc",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Faust app id, the Kafka consumer group, and the deployment's name on the "
        "model snapshot topic (what `streamproc model` acts on)",
    )
    batch_size: int = Field(
        500, ge=1, le=100_000, description="most records in one batch (one fetch, one agent step)"
    )
    batches_in_flight: int = Field(
        4,
        ge=1,
        le=64,
        description="batches per topic whose outputs may await their acks while the next ones "
        "are processed (1: each batch waits for its acks)",
    )
    fetch_wait_ms: int = Field(
        5,
        ge=0,
        le=10_000,
        description="how long the broker may hold a fetch to fill fetch_min_bytes "
        "(librdkafka fetch.wait.max.ms): the most a light load waits for company",
    )
    fetch_min_bytes: int = Field(
        65_536,
        ge=1,
        le=100_000_000,
        description="bytes the broker gathers before it answers a fetch, unless "
        "fetch_wait_ms passes first: a heavy load comes in full batches at once",
    )
    produce_linger_ms: float = Field(
        2,
        ge=0,
        le=1000,
        description="how long the producer waits to fill a request (librdkafka linger.ms); "
        "a batch's outputs go out together anyway, so a short wait costs little throughput",
    )
    commit_interval_s: float = Field(
        1.0,
        gt=0,
        le=600,
        description="how often the finished batches' offsets are committed (also on every "
        "rebalance and stop); a crash repeats at most this much work",
    )
    session_timeout_s: float = Field(
        30,
        ge=6,
        le=300,
        description="how long Kafka waits for a silent worker before "
        "handing its partitions to another (a crashed worker's partitions wait this long)",
    )
    feature_cache_entities: int = Field(
        20_000,
        ge=0,
        le=10_000_000,
        description="entities whose parsed feature state a worker keeps between batches "
        "(~5 KB each with the reference pipeline); 0: read every batch's entities from Redis",
    )
    trainer: bool = Field(
        True,
        description="whether this worker may be the pipeline's trainer (one holds the lease; "
        "false: it only serves predictions)",
    )
    inference: bool = Field(
        True,
        description="whether this worker consumes the pipeline's topics and serves predictions "
        "(false, with STREAMPROC_TRAINER=true: a process that only trains)",
    )
    worker_id: str = Field(
        "", description="this worker's name for the trainer lease; empty: host name and web port"
    )
    trainer_lease_s: float = Field(
        15,
        ge=1,
        le=600,
        description="how long a silent trainer keeps the lease before another worker takes it",
    )
    follow_interval_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="how often a worker looks for a newer model snapshot or champion choice "
        "(each swap unpickles the champion: ~10 ms of CPU per MB)",
    )
    erasure_interval_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="how often a worker reads new erasures (streamproc.erasures.v1); "
        "`streamproc erase` sweeps Redis again after twice this, for what workers that had not "
        "read it yet wrote meanwhile",
    )
    web_host: str = Field(
        "127.0.0.1", description="address of /metrics and /healthz; 0.0.0.0 in containers"
    )
    web_port: int = Field(6066, ge=1, le=65535, description="port of /metrics and /healthz")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="the lowest level of log records written"
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [part.strip() for part in value.split(",")]
        if not all(_HOST_PORT.match(server) for server in servers):
            raise ValueError("expected host:port[,host:port...], e.g. 127.0.0.1:9092")
        return ",".join(servers)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    def schema_registry_secret(self) -> str | None:
        """The registry's user:password in clear, for the client that sends it; None: no auth."""
        auth = self.schema_registry_auth
        return auth.get_secret_value() if auth is not None else None

    @field_validator("schema_registry_url")
    @classmethod
    def _check_registry_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://", "mock://")):
            raise ValueError("expected an http:// or https:// URL, or leave it unset")
        return value

    @model_validator(mode="after")
    def _check_role(self) -> Settings:
        if not (self.inference or self.trainer):
            raise ValueError(
                "STREAMPROC_INFERENCE and STREAMPROC_TRAINER are both false: the worker would do "
                "nothing; set one of them to true"
            )
        return self


def load_settings() -> Settings:
    """Read the environment; a bad value raises ConfigError naming the variable and the rule."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for problem in exc.errors():
            field = ".".join(str(part) for part in problem["loc"])
            if not field:  # a rule across variables names them in its message
                lines.append(problem["msg"].removeprefix("Value error, "))
                continue
            variable = f"{ENV_PREFIX}{field.upper()}"
            info = Settings.model_fields.get(field)
            allowed = f" (expected: {info.description})" if info and info.description else ""
            secret = field.endswith(("auth", "key"))
            value = "(hidden)" if secret else repr(problem.get("input"))
            lines.append(f"{variable}={value}: {problem['msg']}{allowed}")
        raise ConfigError("bad settings in the environment:\n  " + "\n  ".join(lines)) from exc


_REFERENCE_HEAD = """\
# Configuration reference

<!-- Generated from streamproc/config/settings.py by `make docs`; edit the descriptions there. -->

Every command reads its settings from `STREAMPROC_*` environment variables once, at start, and
checks them all. A bad value stops the command with exit code 2 and a message that names the
variable, the value (hidden for secrets) and the rule it broke. Variables this page does not
name are ignored. The local stack's own variables (ports, cache folder) are in the README, under
"The local stack".

| variable | type | default | allowed | meaning |
|---|---|---|---|---|
"""


def configuration_reference() -> str:
    """docs/configuration.md: one row per setting, in declaration order."""
    rows = [_reference_row(name, info) for name, info in Settings.model_fields.items()]
    return _REFERENCE_HEAD + "".join(rows)


def _reference_row(name: str, info: FieldInfo) -> str:
    if not info.description:
        raise ValueError(f"Settings.{name} has no description: the reference needs one")
    cells = (
        f"`{ENV_PREFIX}{name.upper()}`",
        _type_name(info.annotation),
        _default_text(info.default),
        _allowed_text(info),
        info.description,
    )
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "choice"
    if origin in (Union, types.UnionType):
        kept = [arg for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(_type_name(arg) for arg in kept) + ", optional"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, "secret string" if annotation is SecretStr else str(annotation))


def _default_text(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, SecretStr):
        return "built in (hidden)"  # never print a key, even the development one
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float):
        return f"`{default:g}`"
    if default == "":
        return "empty"
    return f"`{default}`"


def _allowed_text(info: FieldInfo) -> str:
    """The rules a value must meet, from the field's type and constraints."""
    if get_origin(info.annotation) is Literal:
        return ", ".join(f"`{choice}`" for choice in get_args(info.annotation))
    if info.annotation is bool:
        return "`true`, `false`"
    bounds = (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"))
    rules = []
    for rule in info.metadata:  # annotated_types' Gt, Ge, …: each has its one attribute
        for attribute, symbol in bounds:
            bound = getattr(rule, attribute, None)
            if bound is not None:
                rules.append(f"{symbol} {bound}")
        pattern = getattr(rule, "pattern", None)
        if pattern is not None:
            rules.append(f"matches `{pattern}`")
    return ", ".join(rules)  # empty: the type, or a validator the meaning describes


if __name__ == "__main__":
    sys.stdout.write(configuration_reference())
