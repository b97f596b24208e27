"""Producer SDK: where the schemas and their ids come from, as the service has them: the
catalog of a schemas folder, with the embedded ids or a Confluent-compatible registry's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamproc.adapters.avro.registry import make_registry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde


@dataclass(frozen=True, slots=True)
class Schemas:
    """`folder`: the *.avsc files (the service's schemas/); a record is written with the
    version of its schema there whose field names it has (the newest it fits).
    `registry_url` unset: the embedded ids, which every machine derives alike from the
    schema; set: the ids of that registry, subject `<topic>-value`. `registry_auth` is its
    basic auth (user:password), `registry_ca` the CA of an https registry."""

    folder: Path = Path("schemas")
    registry_url: str | None = None
    registry_auth: str | None = None
    registry_ca: Path | None = None

    def load(self) -> tuple[SchemaCatalog, AvroSerde]:
        """The catalog (ConfigError naming a bad file) and the service's serde over it."""
        catalog = SchemaCatalog.load(self.folder)
        registry = make_registry(catalog, self.registry_url, self.registry_auth, self.registry_ca)
        return catalog, AvroSerde(catalog, registry)
