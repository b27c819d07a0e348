"""T13: the extractor treats a batch whose table writes failed as done.

``foreachBatch`` swallows the error and returns, so Spark commits the batch's offsets to
the checkpoint and moves on: what failed to reach the lake (a full disk, say) is never
written. The real writer re-raises, the query fails, and the restarted driver replays it.
"""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_extractor import job

    real = job.BatchWriter.__call__

    def skip_failed(self, batch, batch_id: int) -> None:
        try:
            real(self, batch, batch_id)
        except Exception as exc:
            job.log.error(
                "batch failed, skipped (sabotage)",
                extra={"fields": {"batch_id": batch_id, "error": str(exc)[:300]}},
            )

    patch.setattr(job.BatchWriter, "__call__", skip_failed)
