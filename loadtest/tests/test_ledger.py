"""The ledger's accounting: what counts as lost, duplicated and phantom."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from questlog_loadtest import verify
from questlog_loadtest.ledger import Ledger


class FakeQuery:
    """A query service answering /v1/events/{type} from a dict, two rows a page."""

    def __init__(self, rows_by_type):
        self.rows_by_type = rows_by_type
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                event_type = url.path.rsplit("/", 1)[-1]
                start = int(parse_qs(url.query).get("cursor", ["0"])[0])
                rows = outer.rows_by_type.get(event_type, [])
                page = rows[start:start + 2]
                nxt = str(start + 2) if start + 2 < len(rows) else None
                body = json.dumps({"rows": page, "next_cursor": nxt, "as_of": {}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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


def row(eid, player="run7-p1"):
    return {"event_id": eid, "player_id": player, "host": None}


def check(ledger_file, rows_by_type):
    fake = FakeQuery(rows_by_type)
    try:
        return verify.verify([ledger_file], fake.url, wait=0, log=lambda *_: None)
    finally:
        fake.close()


def test_exact_run_is_ok(ledger_file):
    report = check(ledger_file, {"purchase_sword": [row("a"), row("b"), row("c")],
                                 "join_guild": [row("d")]})
    assert (report.sent, report.accepted, report.unavailable, report.rejected,
            report.no_answer) == (7, 4, 1, 1, 1)
    assert (report.stored, report.lost, report.duplicated, report.phantom) == (4, 0, 0, 0)
    assert report.ok


def test_lost_duplicated_and_phantom_are_counted(ledger_file):
    report = check(ledger_file, {
        "purchase_sword": [row("a"), row("a"), row("b"), row("zz")],  # c lost, a twice, zz
        "join_guild": [row("d"), row("other", player="someone-else")],  # not this run
    })
    assert (report.lost, report.duplicated, report.phantom) == (1, 1, 1)
    assert not report.ok


def test_unavailable_event_that_got_stored_anyway_is_a_phantom(ledger_file):
    report = check(ledger_file, {"purchase_sword": [row("a"), row("b"), row("c")],
                                 "join_guild": [row("d"), row("e")]})
    assert report.phantom == 1


def test_event_in_flight_when_the_run_stopped_is_no_answer_not_a_phantom(tmp_path):
    from questlog_loadtest.ledger import SENT

    led = Ledger(tmp_path / "l.jsonl", run_id="run7")
    led.record(["a", "b"], "purchase_sword", SENT)
    led.record(["a", "b"], "purchase_sword", 202)
    led.record(["c"], "join_guild", SENT)  # the run stopped before c's answer
    led.close()
    report = check(tmp_path / "l.jsonl", {"purchase_sword": [row("a"), row("b")],
                                          "join_guild": [row("c")]})
    assert (report.sent, report.accepted, report.no_answer) == (3, 2, 1)
    assert (report.lost, report.duplicated, report.phantom) == (0, 0, 0)
    assert report.stored == 3
