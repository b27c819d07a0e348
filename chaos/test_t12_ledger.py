"""T12: the ledger verifier finds an exact duplicate row wherever it lies.

A run of events goes through the shared stack's API with a load ledger; the verifier
(``questlog_loadtest.verify``, the one ``make load`` runs) must find it whole: nothing
lost, duplicated or invented. Then what a bad replay writes is planted: an exact copy of
one of the run's rows, appended to its Delta table with deltalake, chosen where the REST
pages of ``GET /v1/events`` break (the last row of a page; the next page starts strictly
after it, so the copy is never read by a pager). The verifier counts with aggregate SQL
and must report exactly the planted copies, by id. The line also says how many of them
the paging count (the verifier's former method) saw.

The planted rows stay in the shared stack's table, tagged with this run's player ids.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter

import pytest
from deltalake import DeltaTable, write_deltalake

from questlog_chaos.report import Result, spread
from questlog_chaos.traffic import event, post_events
from questlog_loadtest import verify
from questlog_loadtest.ledger import Ledger, read

PAGE = 1000  # the REST page size the paging count asks for (verify.stored_rows)


def page_boundaries(query: str, run: str, since: float, until: float) -> list[dict]:
    """The rows of ``run`` that end a REST page of purchase_sword, in the pager's order."""
    rows = list(verify.stored_rows(query, "purchase_sword", since, until))
    ends = [rows[i] for i in range(PAGE - 1, len(rows) - 1, PAGE)]
    return [r for r in ends if str(r["player_id"]).startswith(f"{run}-")]


def plant_copy(lake_table: str, event_id: str) -> None:
    """Append an exact copy of the stored row ``event_id`` (every column as stored)."""
    table = DeltaTable(lake_table).to_pyarrow_table(filters=[("event_id", "=", event_id)])
    assert table.num_rows == 1, f"{event_id}: {table.num_rows} rows before planting"
    write_deltalake(lake_table, table, mode="append", partition_by=["event_date"])


def paged_duplicates(query: str, run: str, since: float, until: float) -> int:
    seen = Counter(
        r["event_id"]
        for r in verify.stored_rows(query, "purchase_sword", since, until)
        if str(r["player_id"]).startswith(f"{run}-")
    )
    return sum(n - 1 for n in seen.values())


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.sabotage("ledger_paging")
def test_t12_verifier_finds_an_exact_duplicate_at_a_page_boundary(
    stack, scale, record, sabotaged, tmp_path
):
    rng = random.Random(scale.seed)
    events = scale.pick(1300, 5200)
    planted_n = scale.pick(1, 4)
    run = f"t12-{uuid.uuid4().hex[:8]}"
    token = (stack.var / "secrets" / "query_read_token").read_text().strip()
    lake_table = (stack.var / "lake" / "tables" / "purchase_sword").as_uri()
    result = Result("T12", "ledger verifier: exact duplicate at a page boundary")

    ledger_path = tmp_path / f"{run}.jsonl"
    ledger = Ledger(ledger_path, run)
    statuses: Counter[int] = Counter()
    batch: list[dict] = []
    for i in range(events):
        kind = "join_guild" if rng.random() < 0.1 else "purchase_sword"
        batch.append(event(kind, f"{run}-p{rng.randrange(25)}"))
        if len(batch) == 100 or i == events - 1:
            statuses[post_events(stack.api, batch, ledger=ledger).status] += len(batch)
            batch = []
    ledger.close()
    result.errors_5xx = sum(n for s, n in statuses.items() if s >= 500)
    result.check(
        statuses[202] == events,
        f"the API accepted {statuses[202]} of {events} events ({dict(statuses)})",
    )

    started = time.monotonic()
    clean = verify.verify(
        [ledger_path], stack.query, wait=300, log=lambda *_: None, read_token=token
    )
    visible_s = time.monotonic() - started
    result.lost, result.duplicates = clean.lost, clean.duplicated
    result.check(clean.phantom == 0, f"{clean.phantom} phantom events: {clean.samples}")
    result.check(clean.stored == events, f"verifier counted {clean.stored} stored of {events}")

    records = list(read([ledger_path]))
    since = min(r["t"] for r in records) - verify.SLOWEST_ANSWER_S
    until = max(r["t"] for r in records) + verify.SLOWEST_ANSWER_S
    boundaries = page_boundaries(stack.query, run, since, until)
    result.check(
        len(boundaries) >= planted_n,
        f"only {len(boundaries)} page boundaries fall on this run's rows; {planted_n} wanted",
    )
    planted = [r["event_id"] for r in boundaries[:planted_n]]
    for event_id in planted:
        plant_copy(lake_table, event_id)
    time.sleep(1.0)  # the query service checks for a new table version every 0.25 s

    started = time.monotonic()
    after = verify.verify(
        [ledger_path], stack.query, wait=30, log=lambda *_: None, read_token=token
    )
    verify_s = time.monotonic() - started
    found = sorted(d["event_id"] for d in after.samples["duplicated"])
    result.check(
        after.duplicated == len(planted),
        f"verifier reported {after.duplicated} duplicated after {len(planted)} exact "
        "copies planted at page boundaries",
    )
    result.check(found == sorted(planted)[:5], f"duplicates named {found}, planted {planted}")
    result.check(
        (after.lost, after.phantom) == (0, 0),
        f"after planting: lost {after.lost}, phantom {after.phantom}",
    )
    pager_saw = paged_duplicates(stack.query, run, since, until)

    result.load = f"{events} events in batches of 100 through the stack's API, ledgered"
    result.faults = f"{len(planted)} exact row copies appended at REST page boundaries"
    result.inputs = f"{clean.accepted} accepted, {after.stored} distinct stored"
    result.figures = {
        "planted found": f"{after.duplicated}/{len(planted)}",
        "paging count saw": f"{pager_saw}/{len(planted)}",
        "all visible after": spread([visible_s], " s", 1),
        "verify (SQL) took": spread([verify_s], " s", 2),
    }
    record(result)
