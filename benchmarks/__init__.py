"""Benchmarks on the local stack: figures, not pass or fail (make bench runs them)."""
