"""streamproc: Kappa-style streaming event processing on Kafka, Avro, Faust, Redis and River."""

__version__ = "0.1.0"
