"""The ledger's accounting: what counts as lost, duplicated and phantom, counted by the
real query service over real Delta tables."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from questlog_loadtest import verify
from questlog_loadtest.ledger import SENT, Ledger


@pytest.fixture
def ledger_file(tmp_path):
    led = Ledger(tmp_path / "ledger.jsonl", run_id="run7")
    led.record(["a", "b", "c"], "purchase_sword", 202)
    led.record(["d"], "join_guild", 202)
    led.record(["e"], "join_guild", 503)
    led.record(["f"], "purchase_sword", 422)
    led.record(["g"], "purchase_sword", 0)
    led.close()
    return tmp_path / "ledger.jsonl"


def row(eid, player="run7-p1", **extra):
    return {"event_id": eid, "player_id": player, **extra}


def check(served_lake, ledger_file, rows_by_type):
    for event_type, rows in rows_by_type.items():
        served_lake.write(event_type, rows)
    return verify.verify(
        [ledger_file], served_lake.url, wait=0, log=lambda *_: None, read_token=served_lake.token
    )


def test_exact_run_is_ok(served_lake, ledger_file):
    report = check(
        served_lake,
        ledger_file,
        {"purchase_sword": [row("a"), row("b"), row("c")], "join_guild": [row("d")]},
    )
    assert (
        report.sent,
        report.accepted,
        report.unavailable,
        report.rejected,
        report.no_answer,
    ) == (7, 4, 1, 1, 1)
    assert (report.stored, report.lost, report.duplicated, report.phantom) == (4, 0, 0, 0)
    assert report.by_type == {"purchase_sword": 3, "join_guild": 1}
    assert report.ok


def test_lost_duplicated_and_phantom_are_counted(served_lake, ledger_file):
    report = check(
        served_lake,
        ledger_file,
        {
            "purchase_sword": [row("a"), row("a"), row("b"), row("zz")],  # c lost, a twice, zz
            "join_guild": [row("d"), row("other", player="someone-else")],  # not this run
        },
    )
    assert (report.lost, report.duplicated, report.phantom) == (1, 1, 1)
    assert report.samples["duplicated"] == [
        {"event_id": "a", "copies": 2, "event_types": "purchase_sword"}
    ]
    assert report.samples["phantom"] == ["zz"]
    assert not report.ok


def test_rows_outside_the_run_are_not_counted(served_lake, ledger_file):
    """Another run whose id starts with this one's, and this run's tag long before it."""
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    report = check(
        served_lake,
        ledger_file,
        {
            "purchase_sword": [
                row("a"),
                row("b"),
                row("c"),
                row("x", player="run77-p1"),
                row("a", received_at=long_ago),
            ],
            "join_guild": [row("d")],
        },
    )
    assert (report.stored, report.duplicated, report.phantom) == (4, 0, 0)


def test_the_same_id_in_two_tables_is_a_duplicate(served_lake, ledger_file):
    report = check(
        served_lake,
        ledger_file,
        {"purchase_sword": [row("a"), row("b"), row("c")], "join_guild": [row("d"), row("a")]},
    )
    assert report.duplicated == 1
    assert report.samples["duplicated"][0]["event_types"] == "join_guild,purchase_sword"


def test_unavailable_event_that_got_stored_anyway_is_a_phantom(served_lake, ledger_file):
    report = check(
        served_lake,
        ledger_file,
        {"purchase_sword": [row("a"), row("b"), row("c")], "join_guild": [row("d"), row("e")]},
    )
    assert report.phantom == 1


def test_event_in_flight_when_the_run_stopped_is_no_answer_not_a_phantom(served_lake, tmp_path):
    led = Ledger(tmp_path / "l.jsonl", run_id="run7")
    led.record(["a", "b"], "purchase_sword", SENT)
    led.record(["a", "b"], "purchase_sword", 202)
    led.record(["c"], "join_guild", SENT)  # the run stopped before c's answer
    led.close()
    report = check(
        served_lake,
        tmp_path / "l.jsonl",
        {"purchase_sword": [row("a"), row("b")], "join_guild": [row("c")]},
    )
    assert (report.sent, report.accepted, report.no_answer) == (3, 2, 1)
    assert (report.lost, report.duplicated, report.phantom) == (0, 0, 0)
    assert report.stored == 3


def test_exact_duplicate_at_a_page_boundary_is_found(served_lake, tmp_path):
    """What a bad replay writes: a byte-for-byte copy of a stored row. Planted right after
    the last row of the REST's first page, the keyset cursor (a strict ``>`` on
    (received_at, event_id)) steps over it; the verifier's aggregate SQL does not."""
    page = 1000  # the REST page size stored_rows asks for
    start = datetime.now(UTC) - timedelta(seconds=5)
    rows = [
        row(
            f"{i:08d}-0000-4000-8000-000000000000",
            player=f"run7-p{i % 7}",
            received_at=start + timedelta(milliseconds=i),
            kafka_partition=0,
            kafka_offset=i,
            host="t12.example",
            sword_type="katana",
        )
        for i in range(page + 200)
    ]
    led = Ledger(tmp_path / "boundary.jsonl", run_id="run7")
    led.record([r["event_id"] for r in rows], "purchase_sword", 202)
    led.close()
    served_lake.write("purchase_sword", rows)
    boundary = dict(rows[page - 1])  # the last row of the first page
    served_lake.write("purchase_sword", [boundary])  # the replayed copy, a later commit

    report = verify.verify(
        [tmp_path / "boundary.jsonl"],
        served_lake.url,
        wait=0,
        log=lambda *_: None,
        read_token=served_lake.token,
    )
    assert (report.stored, report.lost, report.phantom) == (page + 200, 0, 0)
    assert report.duplicated == 1
    assert report.samples["duplicated"] == [
        {"event_id": boundary["event_id"], "copies": 2, "event_types": "purchase_sword"}
    ]
    assert report.by_type == {"purchase_sword": page + 201}

    # the paging the verifier used to do: every row read, and the copy never seen
    paged = Counter(
        r["event_id"]
        for r in verify.stored_rows(served_lake.url, "purchase_sword", start.timestamp() - 1)
    )
    assert sum(paged.values()) == page + 200
    assert max(paged.values()) == 1
    first_page = list(verify.stored_rows(served_lake.url, "purchase_sword", start.timestamp() - 1))[
        :page
    ]
    assert first_page[-1]["event_id"] == boundary["event_id"]


def test_a_commit_between_the_counting_requests_is_not_mixed_in(
    served_lake, ledger_file, monkeypatch
):
    """Counts and ids come from separate requests: a commit landing between them must
    not give counts of one table version and ids of the next."""
    served_lake.write("purchase_sword", [row("a"), row("b")])
    served_lake.write("join_guild", [row("d")])
    real_sql, calls = verify.sql, []

    def sql_then_commit(*args, **kwargs):
        answer = real_sql(*args, **kwargs)
        calls.append(answer["as_of"])
        if len(calls) == 1:  # the extractor commits c right after the counts were taken
            served_lake.write("purchase_sword", [row("c")])
        return answer

    monkeypatch.setattr(verify, "sql", sql_then_commit)
    report = verify.verify(
        [ledger_file], served_lake.url, wait=0, log=lambda *_: None, read_token=served_lake.token
    )
    assert (report.stored, report.lost, report.duplicated) == (4, 0, 0)
    assert report.by_type == {"purchase_sword": 3, "join_guild": 1}
    assert calls[0]["purchase_sword"] != calls[-1]["purchase_sword"]


def test_a_refused_token_stops_the_check_with_the_reason(served_lake, ledger_file):
    with pytest.raises(verify.QueryRefused, match="401: the read token was refused"):
        verify.verify([ledger_file], served_lake.url, wait=0, read_token="wrong")


def test_the_read_token_comes_from_the_embedded_var_dir(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "query_read_token").write_text("tok\n")
    assert verify.read_token(environ={"QUESTLOG_VAR_DIR": str(tmp_path)}) == "tok"
    assert verify.read_token("given", environ={"QUESTLOG_VAR_DIR": str(tmp_path)}) == "given"
    with pytest.raises(SystemExit, match="no read token"):
        verify.read_token(environ={"QUESTLOG_VAR_DIR": str(tmp_path / "nowhere")})


def test_the_command_line_reads_the_token_file_and_fails_on_a_duplicate(
    served_lake, ledger_file, tmp_path, capsys
):
    token_file = tmp_path / "query_read_token"
    token_file.write_text(served_lake.token + "\n")
    served_lake.write("purchase_sword", [row("a"), row("b"), row("c")])
    served_lake.write("join_guild", [row("d")])
    args = [
        "--ledger",
        str(ledger_file),
        "--query",
        served_lake.url,
        "--wait",
        "0",
        "--read-token-file",
        str(token_file),
    ]
    assert verify.main(args) == 0
    assert "LEDGER OK" in capsys.readouterr().out
    served_lake.write("join_guild", [row("d")])
    assert verify.main(args) == 1
    assert "LEDGER FAILED" in capsys.readouterr().err
