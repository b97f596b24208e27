"""Core: pure domain logic: canonical values, normalizing, unit switches, dedupe, features, River
models, training. No Kafka, Redis, Faust, Avro or metrics: what it needs from outside is a
Protocol it declares (a port), implemented in adapters.
"""
