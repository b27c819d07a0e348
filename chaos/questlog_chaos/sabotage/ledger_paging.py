"""T12: the ledger verifier counts the stored side by paging rows, as it used to.

Every row of the run is read through ``GET /v1/events/<type>`` pages and counted in the
client. The pages' keyset cursor is a strict ``>`` on (received_at, event_id), so an exact
duplicate row (what a bad replay writes) that falls right after a page's last row is
never read: the duplicate goes unreported.
"""

from __future__ import annotations

from collections import Counter


def count_by_paging(query, token, types, scope):
    from questlog_loadtest import verify

    rows_by_type: Counter[str] = Counter()
    copies: Counter[str] = Counter()
    ids_by_type: dict[str, set[str]] = {}
    for event_type in types:
        for row in verify.stored_rows(query, event_type, scope.since, scope.until):
            pid = str(row.get("player_id") or "")
            if not (
                any(pid.startswith(f"{run}-") for run in scope.run_ids)
                or row.get("host") in scope.hosts
            ):
                continue
            rows_by_type[event_type] += 1
            copies[row["event_id"]] += 1
            ids_by_type.setdefault(event_type, set()).add(row["event_id"])
    return verify.Stored(
        rows_by_type=dict(rows_by_type),
        ids_by_type={t: len(ids) for t, ids in ids_by_type.items()},
        rows=sum(copies.values()),
        distinct=len(copies),
        ids=set(copies),
        duplicates=[
            {"event_id": e, "copies": n, "event_types": None} for e, n in copies.items() if n > 1
        ],
    )


def apply(patch) -> None:
    from questlog_loadtest import verify

    patch.setattr(verify, "count_stored", count_by_paging)
