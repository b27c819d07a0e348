"""T7's mechanism broken: one query-service handler (GET /v1/tables) fails with an
unexpected exception, which the service answers 500."""


def apply(patch) -> None:
    from questlog_query.api import tables

    def broken():
        raise RuntimeError("sabotage: the snapshot cache is gone")

    patch.setattr(tables, "state", broken)
