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
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamproc.config.connections import TlsFiles, redact_url, system_trusts_cas
from streamproc.config.deployment import BASE_VERSION, VERSION_PATTERN, Deployment
from streamproc.config.kafka import (
    EndpointCheck,
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
)
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
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="how clients talk to the brokers: `PLAINTEXT` (the local stack), `SSL` "
        "(TLS), `SASL_SSL` (TLS and a SASL user); not `SASL_PLAINTEXT`: it would send the "
        "credentials in cleartext",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="the SASL mechanism with `SASL_SSL`"
    )
    kafka_sasl_username: str | None = Field(None, description="the SASL user with `SASL_SSL`")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="the SASL user's password with `SASL_SSL`"
    )
    kafka_ssl_ca_location: Path | None = Field(
        None,
        description="PEM file of the CA that signed the brokers' certificates (`SSL`, "
        "`SASL_SSL`); unset: librdkafka's default CA store",
    )
    kafka_ssl_certificate_location: Path | None = Field(
        None, description="PEM certificate of this client, for brokers that require mutual TLS"
    )
    kafka_ssl_key_location: Path | None = Field(
        None, description="PEM private key of that certificate (unencrypted)"
    )
    kafka_ssl_endpoint_identification: EndpointCheck = Field(
        "https",
        description="`https`: a broker's certificate must name the host it is reached at; "
        "`none` skips that check (the CA is still checked)",
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
        "it (rediss://user:password@host:6380/0), TLS files in STREAMPROC_REDIS_TLS_*; logs "
        "and errors show it with the password as `***` (docs/security.md)",
    )
    redis_tls_ca: Path | None = Field(
        None,
        description="PEM file of the CA that signed Redis' certificate (rediss:// only); "
        "unset: the system's trusted CAs",
    )
    redis_tls_cert: Path | None = Field(
        None,
        description="PEM file of this client's certificate, for a Redis that asks for one "
        "(tls-auth-clients); it may hold the key as well",
    )
    redis_tls_key: Path | None = Field(
        None,
        description="PEM file of the client certificate's private key; unset: it is in the "
        "certificate's file",
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
    schema_registry_ca_location: Path | None = Field(
        None,
        description="PEM file of the CA that signed an https registry's certificate; unset: "
        "STREAMPROC_KAFKA_SSL_CA_LOCATION if set, else the client's default CA bundle",
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
    version: str = Field(
        BASE_VERSION,
        pattern=VERSION_PATTERN,
        description="the deployment version this process runs (`v1`, `v2`, ...): v1 is the "
        "deployment's first, with names unsuffixed; another version keeps its Redis keys under "
        "`<namespace>:<version>`, consumes as group `<app id>-<version>` and writes topics "
        "ending `.<version>` (`streamproc replay` starts one; docs/replay.md)",
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
    align_partitions_ms: int | None = Field(
        None,
        ge=0,
        le=86_400_000,
        description="keep each input topic's partitions within this much log time of the "
        "slowest still being read (a replay sets 10000: two replays then learn alike); "
        "unset: each partition at its own pace",
    )
    produce_linger_ms: float = Field(
        2,
        ge=0,
        le=1000,
        description="how long the producer waits to fill a request (librdkafka linger.ms); "
        "a batch's outputs go out together anyway, so a short wait costs little throughput",
    )
    commit_interval_s: float = Field(
        0.1,
        gt=0,
        le=600,
        description="how often the finished batches' offsets are committed under load (also "
        "on every rebalance and stop, and at once when the worker is at rest). Exactly-once: "
        "readers see outputs once committed, so each hop through a topic waits up to this "
        "long; longer intervals cost less throughput. At-least-once: a crash repeats at most "
        "this much work",
    )
    stall_timeout_s: float = Field(
        20,
        ge=1,
        le=3600,
        description="how long a batch may take in processing, with Redis and Kafka answering, "
        "before the worker reports itself stalled (/healthz 503, an error logged; it exits "
        "once the stall has lasted the outage budget)",
    )
    redis_timeout_s: float = Field(
        5,
        gt=0,
        le=600,
        description="how long a Redis call may take before it counts as failed (and is "
        "retried, within the outage budget)",
    )
    outage_budget_s: float = Field(
        120,
        ge=1,
        le=86_400,
        description="how long a worker rides through a Redis or Kafka outage (retrying with "
        "backoff, its partitions paused, /readyz false) before it exits with status 3",
    )
    delivery: Literal["exactly-once", "at-least-once"] = Field(
        "exactly-once",
        description="exactly-once: each commit interval's outputs and input offsets are "
        "committed in one Kafka transaction (a crash or rebalance repeats nothing; "
        "readers of our topics see outputs up to one interval later). at-least-once: "
        "outputs are visible at once, and a crash repeats those of the last interval",
    )
    transaction_timeout_s: float = Field(
        15,
        ge=2,
        le=900,
        description="how long the broker keeps a silent worker's transaction open before it "
        "aborts it; a restarted worker with the same worker_id aborts it at once",
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
        "",
        description="this worker's stable name: its trainer lease and its transactional id (a "
        "restart under the same name fences what its predecessor left open at once); empty: "
        "host name and web port",
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
        "127.0.0.1", description="address of /metrics, /healthz and /readyz; 0.0.0.0 in containers"
    )
    web_port: int = Field(
        6066, ge=1, le=65535, description="port of /metrics, /healthz and /readyz"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="the lowest level of log records written"
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text: lines for a person; json: one JSON object a line (time, level, "
        "logger, message, and a dead letter's reason, event_id, topic, partition, offset) "
        "for a log shipper",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [part.strip() for part in value.split(",")]
        if not all(_HOST_PORT.match(server) for server in servers):
            raise ValueError("expected host:port[,host:port...], e.g. 127.0.0.1:9092")
        return ",".join(servers)

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _refuse_cleartext_credentials(cls, value: Any) -> Any:
        protocol = value.strip().upper() if isinstance(value, str) else value
        if protocol == "SASL_PLAINTEXT":
            raise ValueError(
                "SASL_PLAINTEXT would send the SASL credentials in cleartext: use SASL_SSL"
            )
        return protocol

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @property
    def json_logs(self) -> bool:
        """Whether logs are JSON lines (STREAMPROC_LOG_FORMAT=json)."""
        return self.log_format == "json"

    def deployment(self) -> Deployment:
        """The version this process runs, and its names."""
        return Deployment(self.version, self.redis_namespace, self.app_id)

    def kafka_connection(self) -> KafkaConnection:
        """How every Kafka client of this process reaches the brokers."""
        return KafkaConnection(
            self.kafka_bootstrap,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_ca_location=self.kafka_ssl_ca_location,
            ssl_certificate_location=self.kafka_ssl_certificate_location,
            ssl_key_location=self.kafka_ssl_key_location,
            ssl_endpoint_identification=self.kafka_ssl_endpoint_identification,
        )

    @field_validator("redis_tls_ca", "redis_tls_cert", "redis_tls_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_tls_ca", "redis_tls_cert", "redis_tls_key")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("no such file")
        return value

    def redis_tls(self) -> TlsFiles | None:
        """The TLS files of a rediss:// URL; None for a plaintext one."""
        if not self.redis_url.startswith("rediss://"):
            return None
        return TlsFiles(self.redis_tls_ca, self.redis_tls_cert, self.redis_tls_key)

    def schema_registry_ca(self) -> Path | None:
        """The CA an https registry's certificate is checked against (one private CA often
        signs the brokers' and the registry's)."""
        return self.schema_registry_ca_location or self.kafka_ssl_ca_location

    def schema_registry_secret(self) -> str | None:
        """The registry's user:password in clear, for the client that sends it; None: no auth."""
        auth = self.schema_registry_auth
        return auth.get_secret_value() if auth is not None else None

    @field_validator("schema_registry_ca_location")
    @classmethod
    def _check_registry_ca(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("no such file")
        return value

    @field_validator("schema_registry_url")
    @classmethod
    def _check_registry_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://", "mock://")):
            raise ValueError("expected an http:// or https:// URL, or leave it unset")
        return value

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        problems = kafka_security_problems(self)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    @model_validator(mode="after")
    def _check_redis_tls(self) -> Settings:
        url, files = self.redis_url, (self.redis_tls_ca, self.redis_tls_cert, self.redis_tls_key)
        # redis-py would take ssl_* options from the query too: the settings are the one way.
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
        options = sorted({name for name, _ in query if name.startswith("ssl")})
        if options:
            raise ValueError(
                f"STREAMPROC_REDIS_URL has TLS options in its query ({', '.join(options)}): set "
                "STREAMPROC_REDIS_TLS_CA, STREAMPROC_REDIS_TLS_CERT and STREAMPROC_REDIS_TLS_KEY "
                "instead"
            )
        if any(files) and not url.startswith("rediss://"):
            raise ValueError(
                "STREAMPROC_REDIS_TLS_* are set but STREAMPROC_REDIS_URL is not a rediss:// URL, "
                "so they would be ignored: use rediss://host:port, or unset them"
            )
        if self.redis_tls_key is not None and self.redis_tls_cert is None:
            raise ValueError(
                "STREAMPROC_REDIS_TLS_KEY is set without STREAMPROC_REDIS_TLS_CERT: set the "
                "client certificate it belongs to"
            )
        if url.startswith("rediss://") and self.redis_tls_ca is None and not system_trusts_cas():
            raise ValueError(
                "STREAMPROC_REDIS_URL is rediss:// but STREAMPROC_REDIS_TLS_CA is unset and this "
                "system has no trusted CAs to check Redis' certificate with: set "
                "STREAMPROC_REDIS_TLS_CA to the CA's PEM file"
            )
        return self

    @model_validator(mode="after")
    def _check_role(self) -> Settings:
        if not (self.inference or self.trainer):
            raise ValueError(
                "STREAMPROC_INFERENCE and STREAMPROC_TRAINER are both false: the worker would do "
                "nothing; set one of them to true"
            )
        if self.delivery == "exactly-once" and (
            self.transaction_timeout_s < self.commit_interval_s + 10
        ):
            raise ValueError(
                f"STREAMPROC_TRANSACTION_TIMEOUT_S={self.transaction_timeout_s:g} is too short: a "
                "transaction lasts a commit interval plus the time to finish its batches; set it "
                "to at least STREAMPROC_COMMIT_INTERVAL_S + 10"
            )
        return self


def kafka_security_problems(settings: Settings) -> list[str]:
    """What is missing or contradictory in the Kafka security settings, each naming the
    variables and the fix. A setting that would be ignored is a problem too: credentials set
    without SASL_SSL would otherwise connect in plaintext, silently."""
    protocol = settings.kafka_security_protocol
    sasl = {"USERNAME": settings.kafka_sasl_username, "PASSWORD": settings.kafka_sasl_password}
    files = {
        "CA_LOCATION": settings.kafka_ssl_ca_location,
        "CERTIFICATE_LOCATION": settings.kafka_ssl_certificate_location,
        "KEY_LOCATION": settings.kafka_ssl_key_location,
    }
    problems = []
    for name, value in sasl.items():
        variable = f"{ENV_PREFIX}KAFKA_SASL_{name}"
        if protocol == "SASL_SSL" and not value:
            problems.append(
                f"{variable} is unset: {ENV_PREFIX}KAFKA_SECURITY_PROTOCOL=SASL_SSL "
                f"needs the SASL user's {name.lower()}; set it"
            )
        elif protocol != "SASL_SSL" and value:
            problems.append(
                f"{variable} is set but {ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={protocol} does not "
                "use it; set the protocol to SASL_SSL, or unset the variable"
            )
    for name, path in files.items():
        variable = f"{ENV_PREFIX}KAFKA_SSL_{name}"
        if path is None:
            continue
        if protocol == "PLAINTEXT":
            problems.append(
                f"{variable} is set but {ENV_PREFIX}KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not "
                "use TLS; set the protocol to SSL or SASL_SSL, or unset the variable"
            )
        elif not path.is_file():
            problems.append(f"{variable}={path}: no such file")
    if (files["CERTIFICATE_LOCATION"] is None) != (files["KEY_LOCATION"] is None):
        problems.append(
            f"{ENV_PREFIX}KAFKA_SSL_CERTIFICATE_LOCATION and {ENV_PREFIX}KAFKA_SSL_KEY_LOCATION "
            "go together (a client certificate and its key): set both or neither"
        )
    return problems


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
            secret = field.endswith(("auth", "key", "password"))
            given = problem.get("input")
            shown = redact_url(given) if isinstance(given, str) and "://" in given else given
            value = "(hidden)" if secret else repr(shown)
            rule = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{variable}={value}: {rule}{allowed}")
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
