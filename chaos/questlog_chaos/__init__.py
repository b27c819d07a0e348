"""questlog's reliability suite: each scenario (T1-T14) drives real processes (Kafka, the
API under gunicorn, the Spark extractor, the query service) under load, injects a fault or
hostile input, and reports one line of figures. The scenarios are the ``chaos/test_t*.py``
files; this package holds what they share.
"""
