"""Edges: adapters from the core's protocols to Kafka, Redis and the schema registry."""
