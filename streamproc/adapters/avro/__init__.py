"""Avro: the schema catalog, the Confluent wire format, and schema registries."""
