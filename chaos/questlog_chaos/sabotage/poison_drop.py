"""T6: the extractor drops bad records instead of quarantining them: both writers skip
the quarantine table (its append is never made), so poison vanishes without a trace."""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_extractor import job

    for name in ("write_arrow", "write_spark"):
        real = getattr(job.BatchWriter, name)

        def skip_quarantine(self, rows, table, *rest, _real=real):
            if table == job.QUARANTINE:
                return None
            return _real(self, rows, table, *rest)

        patch.setattr(job.BatchWriter, name, skip_quarantine)
