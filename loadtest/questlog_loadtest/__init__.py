"""questlog's load generator (Locust) and the ledger that proves nothing was lost."""
