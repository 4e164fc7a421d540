"""Latency and accuracy harness (run with `python -m benchmarks.<name>`)."""
