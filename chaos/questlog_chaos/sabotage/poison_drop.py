"""T6: the extractor drops bad records instead of quarantining them: both writers skip
the quarantine table (its append is never made), so poison vanishes without a trace."""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_extractor import writers

    # each strategy's per-table append (the delta-rs one's write() goes through write_arrow)
    for strategy, name in ((writers.DeltaRsWriter, "write_arrow"), (writers.SparkWriter, "write")):
        real = getattr(strategy, name)

        def skip_quarantine(self, rows, table, *rest, _real=real):
            if table == writers.QUARANTINE:
                return None
            return _real(self, rows, table, *rest)

        patch.setattr(strategy, name, skip_quarantine)
