"""T3 (and T13's replays): the extractor forgets which batches a table already holds.

delta-rs answers "no transaction" for every app id, so a batch replayed after a crash is
appended again, and commits carry no app transaction at all: the Delta txn-id check that
makes the writer idempotent per (app id, batch id) is off.
"""

from __future__ import annotations


def apply(patch) -> None:
    import deltalake

    real = deltalake.CommitProperties

    def without_app_transactions(*args, app_transactions=None, **kwargs):
        return real(*args, **kwargs)

    patch.setattr(deltalake.DeltaTable, "transaction_version", lambda self, app_id: None)
    patch.setattr(deltalake, "CommitProperties", without_app_transactions)
