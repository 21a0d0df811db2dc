"""Experiments: benchmarks that write records, and tables computed from them."""
