"""Scoring saved models: a split of their own data (evaluate.py)."""
