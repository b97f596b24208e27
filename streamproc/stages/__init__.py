"""Stages: a batch of records through the core's steps to one outcome per batch (the clean stage;
features, predict and served x). The worker, run-file and the benchmarks run these same stages.
"""
