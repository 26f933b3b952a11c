"""Benchmarks of memory and speed; their results are stored for the admin view."""
