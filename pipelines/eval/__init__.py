"""Inference and scoring of trained runs."""
