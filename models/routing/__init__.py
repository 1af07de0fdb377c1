"""Routing models: per-intent routes learned from answer outcomes (policy.py)."""
