"""Adapters: the ports' implementations and the wire: Avro and the schema registry, Kafka, Redis,
in-memory stores, Prometheus metrics.
"""
