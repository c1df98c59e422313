"""Datasets: the manifest every stage reads, the adapters that write it, demo data."""
