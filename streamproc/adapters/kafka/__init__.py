"""Kafka (confluent-kafka): administration, the batch consumer and sender, dead letters and
their re-drive, the operator's topic reads, and the model snapshot topic.
"""
