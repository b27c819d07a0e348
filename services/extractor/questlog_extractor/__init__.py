"""questlog's extractor: one Spark Structured Streaming job from the Kafka topic to typed
Delta tables (one per registered event type) plus a quarantine table, exactly once.

Usage::

    python -m questlog_extractor            # stream until stopped
    python -m questlog_extractor --once     # drain what is in the topic now, then exit
    python -m questlog_extractor maintain   # OPTIMIZE + VACUUM every table
    python -m questlog_extractor compact    # the same without a JVM (--every S: a loop)
"""
