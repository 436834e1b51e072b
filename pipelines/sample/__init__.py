"""Generators for realistic synthetic inputs in the real on-disk formats (tests, demos)."""
