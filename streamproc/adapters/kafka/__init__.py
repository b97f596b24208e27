"""Kafka (confluent-kafka): administration, the batch consumer and sender, dead letters, and the
model snapshot topic.
"""
