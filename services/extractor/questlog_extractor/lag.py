"""How far the extractor is behind the topic, live: the topic's end offsets now minus the
end offsets of the last finished micro-batch.

Spark's own ``offsetsBehindLatest`` is taken when a batch is planned, against the offsets
that batch saw, so it reads 0 whenever a batch takes everything there is (always, below
``maxOffsetsPerTrigger``) and says nothing while the stream stalls. This asks the broker.
The consumer is the JVM's Kafka client that the Spark Kafka source already brings (no
second Kafka library in the image); it never joins a group and commits nothing.

Usage::

    probe = EndOffsets(spark, settings.kafka_bootstrap, settings.topic)
    behind = offsets_behind(last_end_offsets, probe.fetch())   # {partition: offset}
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("questlog_extractor.lag")

_DESERIALIZER = "org.apache.kafka.common.serialization.ByteArrayDeserializer"


class EndOffsets:
    """The topic's end offset per partition, through one JVM KafkaConsumer kept open."""

    def __init__(self, spark: Any, bootstrap: str, topic: str, timeout_s: float = 2.0) -> None:
        self.topic = topic
        jvm = spark.sparkContext._jvm
        props = jvm.java.util.Properties()
        props.setProperty("bootstrap.servers", bootstrap)
        props.setProperty("key.deserializer", _DESERIALIZER)
        props.setProperty("value.deserializer", _DESERIALIZER)
        props.setProperty("client.id", "questlog-extractor-lag")
        props.setProperty("enable.auto.commit", "false")
        self._jvm = jvm
        self._timeout = jvm.java.time.Duration.ofMillis(int(timeout_s * 1000))
        self._consumer = jvm.org.apache.kafka.clients.consumer.KafkaConsumer(props)

    def fetch(self) -> dict[int, int]:
        partitions = self._consumer.partitionsFor(self.topic, self._timeout)
        wanted = self._jvm.java.util.ArrayList()
        for info in partitions or []:
            wanted.add(
                self._jvm.org.apache.kafka.common.TopicPartition(self.topic, info.partition())
            )
        ends = self._consumer.endOffsets(wanted, self._timeout)
        return {int(tp.partition()): int(ends.get(tp)) for tp in ends.keySet()}

    def close(self) -> None:
        try:
            self._consumer.close()
        except Exception:  # the JVM may already be gone at shutdown
            log.debug("closing the lag consumer failed", exc_info=True)


def end_offsets_of(progress_end: Any, topic: str) -> dict[int, int] | None:
    """{partition: offset} of one topic out of a progress ``endOffset`` (JSON or dict)."""
    if isinstance(progress_end, str):
        try:
            progress_end = json.loads(progress_end)
        except ValueError:
            return None
    if not isinstance(progress_end, dict) or not isinstance(progress_end.get(topic), dict):
        return None
    return {int(part): int(offset) for part, offset in progress_end[topic].items()}


def offsets_behind(done: dict[int, int], latest: dict[int, int]) -> int:
    """Records in ``latest`` past ``done``; a partition the stream never read counts whole."""
    return sum(max(0, end - done.get(part, 0)) for part, end in latest.items())
