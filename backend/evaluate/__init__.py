"""Evaluation harness: load medical QA benchmarks, read answers out of model outputs, summarise."""
