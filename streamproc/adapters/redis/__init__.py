"""Redis: the stores behind the core's ports, one script call per batch."""
