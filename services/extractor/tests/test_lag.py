"""The live lag: the broker's end offsets now minus the last finished batch's."""

from __future__ import annotations

import json

import pytest

from questlog_extractor import lag, metrics

from .support import produce


def test_offsets_behind_counts_every_partition_past_the_batch():
    assert lag.offsets_behind({0: 10, 1: 5}, {0: 12, 1: 5, 2: 7}) == 2 + 0 + 7
    assert lag.offsets_behind({0: 10}, {0: 10}) == 0
    assert lag.offsets_behind({0: 10}, {0: 9}) == 0  # never negative


def test_end_offsets_of_reads_one_topic_out_of_a_progress_event():
    end = json.dumps({"events": {"0": 10, "2": 4}, "other": {"0": 99}})
    assert lag.end_offsets_of(end, "events") == {0: 10, 2: 4}
    assert lag.end_offsets_of({"events": {"1": 3}}, "events") == {1: 3}
    assert lag.end_offsets_of("not json", "events") is None
    assert lag.end_offsets_of(None, "events") is None


class FakeProbe:
    topic = "events"

    def __init__(self, ends):
        self.ends = ends

    def fetch(self):
        if isinstance(self.ends, Exception):
            raise self.ends
        return self.ends


def test_the_gauge_follows_the_broker_between_batches():
    reporter = metrics.ProgressReporter(topic="events")
    reporter.refresh_lag(FakeProbe({0: 100}))  # no batch yet: nothing to compare with
    reporter.report(
        [
            {
                "batchId": 0,
                "numInputRows": 10,
                "sources": [{"endOffset": json.dumps({"events": {"0": 40}})}],
            }
        ]
    )
    reporter.refresh_lag(FakeProbe({0: 100}))
    assert metrics.OFFSETS_BEHIND._value.get() == 60
    reporter.refresh_lag(FakeProbe({0: 140}))  # the stream stalls, events keep coming
    assert metrics.OFFSETS_BEHIND._value.get() == 100
    reporter.refresh_lag(FakeProbe(RuntimeError("broker down")))  # keeps the last figure
    assert metrics.OFFSETS_BEHIND._value.get() == 100


@pytest.mark.integration
def test_end_offsets_come_from_the_real_broker(kafka, spark):
    topic = "lag-probe"
    kafka.create_topic(topic, partitions=2)
    produce(kafka.bootstrap, topic, [(b"k%d" % i, b"{}") for i in range(25)])
    probe = lag.EndOffsets(spark, kafka.bootstrap, topic)
    try:
        ends = probe.fetch()
    finally:
        probe.close()
    assert set(ends) == {0, 1}
    assert sum(ends.values()) == 25
