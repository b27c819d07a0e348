"""questlog's embedded mode: pinned JVM artifacts and the lifecycle of Kafka and HDFS.

Services never import this package; tests, `make setup` and `make run` do.
"""
