"""Test machinery for faults: servers as child processes, a TCP proxy, load and oracles."""
