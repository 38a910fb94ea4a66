"""Datasets: the embedded default, readers for the official layouts, transforms."""
