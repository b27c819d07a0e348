"""Blueprints: ``events`` (POST /v1/events), ``legacy`` (the original GET routes), ``ops``."""
