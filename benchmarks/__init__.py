"""DEA benchmarks (see __main__.py)."""
