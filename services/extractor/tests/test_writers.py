"""Which writer strategy runs: ``QUESTLOG_EXTRACTOR_WRITER``, looked at in one place (no
Spark needed; the strategies' writes are test_job.py's and test_compact.py's)."""

from __future__ import annotations

import pytest

from questlog_extractor.settings import WRITERS, Settings
from questlog_extractor.writers import BatchWriter, DeltaRsWriter, SparkWriter, writer_for


def settings(**overrides) -> Settings:
    return Settings(kafka_bootstrap="k:9092", lake_root="file:///lake", **overrides)


@pytest.mark.parametrize(
    ("name", "strategy"), [("delta-rs", DeltaRsWriter), ("spark", SparkWriter)]
)
def test_the_setting_picks_the_strategy_and_the_sink_writes_with_it(name, strategy, registry):
    assert type(writer_for(settings(writer=name), registry)) is strategy
    assert type(BatchWriter(settings(writer=name), registry).strategy) is strategy


def test_delta_rs_is_the_default_and_every_accepted_setting_has_a_strategy(registry):
    assert type(writer_for(settings(), registry)) is DeltaRsWriter
    assert {type(writer_for(settings(writer=w), registry)) for w in WRITERS} == {
        DeltaRsWriter,
        SparkWriter,
    }
    with pytest.raises(KeyError):
        writer_for(settings(writer="parquet"), registry)
