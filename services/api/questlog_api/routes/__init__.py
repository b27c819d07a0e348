"""Blueprints: ``events`` (POST /v1/events), ``legacy`` (the original GET routes); the ops
routes are ``questlog_service.ops``'s."""
