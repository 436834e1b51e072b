"""Benchmarks: measured speed and memory, written to files (never asserted in unit tests)."""
