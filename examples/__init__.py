"""Runnable examples of the producer SDK (streamproc.producer) against the local stack; each
file's docstring says how to run it. A package so that the tests can run each one's main."""
