"""T5: a hostile input corpus at the event API (the shared embedded stack: gunicorn, Kafka,
the extractor, the query service).

At least 200 requests over raw sockets (invalid JSON and UTF-8, NUL and control
characters, deep nesting, 1 MiB strings, duplicate keys, NaN/1e309, wrong content types,
CRLF and framing tricks, forged far-future/far-past timestamps, unknown schema versions,
oversized batches, slow bodies), plus seeded mutations of valid events (40 here, 3,000 at
full scale). Every one must be answered 4xx, none 5xx, and none stored: each carries the
run's token, which must appear neither in the Kafka topic nor in any table (quarantine
included). Valid canary requests between them must all be accepted and land exactly once,
and /healthz and /readyz must answer 200 at the end: the API kept serving.

The slow bodies start first and run alongside the rest: the API cuts each off at its
body deadline (10 s) with 408, while the canaries keep being served.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from questlog_chaos.corpus import Answer, HttpCase, api_cases, canary, mutations, send
from questlog_chaos.report import Result, spread

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CANARY_EVERY = 10
LAKE_WAIT_S = 300.0  # seconds on an idle machine; minutes when Spark shares 2 busy cores


@pytest.mark.sabotage("input_no_screening")
def test_hostile_input_is_refused_stored_nowhere_and_the_api_keeps_serving(
    stack, scale, record, sabotaged, sabotage_env, tmp_path
):
    rng = random.Random(scale.seed)
    token = f"t5x{os.urandom(4).hex()}"
    hostile = api_cases(token) + mutations(token, rng, scale.pick(40, 3000))
    slow = [case for case in hostile if case.trickle_s or case.stall]
    if scale.full:  # more slow connections than the API has threads (2 workers x 8)
        slow = [
            HttpCase(f"{case.name}#{copy}", case.raw, case.marker, case.trickle_s, case.stall)
            for copy in range(4)
            for case in slow
        ]
    fast = [case for case in hostile if not (case.trickle_s or case.stall)]
    rng.shuffle(fast)

    with ApiUnderTest(stack, sabotaged, sabotage_env, tmp_path) as port:
        answers, canaries = _run(port, fast, slow, token)
        health = {
            path: _status(f"http://127.0.0.1:{port}{path}") for path in ("/healthz", "/readyz")
        }

    hostile_answers = [(case, answer) for case, answer in answers]
    statuses = collections.Counter(answer.status for _, answer in hostile_answers)
    not_4xx = [
        (case.name, answer.status, answer.error or answer.body[:120])
        for case, answer in hostile_answers
        if not 400 <= answer.status < 500
    ]
    canary_bad = [
        (case.name, answer.status, answer.body[:120])
        for case, answer, _ in canaries
        if answer.status not in (200, 202)
    ]
    errors_5xx = sum(1 for _, a in hostile_answers if a.status >= 500) + sum(
        1 for _, a, _ in canaries if a.status >= 500
    )

    kafka = _kafka_tally(stack, token)
    expected_ids = {event_id for _, answer, event_id in canaries if answer.status in (200, 202)}
    lake = _lake_tally(stack, token, expected_ids)

    slow_answers = [a for c, a in answers if c.trickle_s or c.stall]
    canary_seconds = [a.seconds for _, a, _ in canaries]
    result = Result(
        "T5",
        "hostile input at the API",
        load=f"{len(canaries)} valid canaries between the hostile requests",
        faults=f"{len(slow)} slow bodies (slowloris) held open meanwhile",
        inputs=f"{len(fast) + len(slow)} hostile requests "
        f"({len({c.group for c in hostile})} groups, "
        f"{sum(c.group == 'mutation' for c in hostile)} seeded mutations)",
        errors_5xx=errors_5xx,
        lost=len(expected_ids - kafka["canary_ids"]),
        duplicates=kafka["canary_copies"] + lake["copies"],
        figures={
            "answers": " ".join(f"{s}x{n}" for s, n in sorted(statuses.items())),
            "stored (Kafka/tables/quarantine)": (
                f"{kafka['hostile']}/{lake['hostile']}/{lake['quarantined']}"
            ),
            "slow bodies cut after": spread([a.seconds for a in slow_answers], " s", 1),
            "canary latency max": f"{max(canary_seconds, default=0):.2f} s",
            "health after": "/".join(str(s) for s in health.values()),
        },
    )
    result.check(
        not not_4xx, f"{len(not_4xx)} hostile requests not answered 4xx, e.g. {not_4xx[:4]}"
    )
    result.check(
        kafka["hostile"] == 0,
        f"{kafka['hostile']} hostile requests reached Kafka, e.g. {kafka['examples']}",
    )
    result.check(lake["hostile"] == 0, f"{lake['hostile']} hostile rows in the event tables")
    result.check(
        lake["quarantined"] == 0, f"{lake['quarantined']} rows of this run in the quarantine table"
    )
    result.check(not canary_bad, f"{len(canary_bad)} canaries refused: {canary_bad[:3]}")
    result.check(
        lake["waited"],
        f"{len(expected_ids - lake['ids'])} canaries in Kafka but not "
        f"in the tables after {LAKE_WAIT_S:.0f} s",
    )
    result.check(all(s == 200 for s in health.values()), f"health after the corpus: {health}")
    result.check(len(hostile) >= 200, f"only {len(hostile)} hostile cases")
    record(result)


def _run(port: int, fast: list[HttpCase], slow: list[HttpCase], token: str):
    """Slow bodies in the background; the rest from 4 clients, a canary every 10 cases."""
    answers: list[tuple[HttpCase, Answer]] = []
    canaries: list[tuple[HttpCase, Answer, str]] = []
    with concurrent.futures.ThreadPoolExecutor(len(slow) + 4) as pool:
        slow_futures = {pool.submit(send, "127.0.0.1", port, case, 60.0): case for case in slow}
        time.sleep(0.5)  # the slow connections are open before the rest starts

        def one(index: int, case: HttpCase):
            out = [(case, send("127.0.0.1", port, case))]
            if index % CANARY_EVERY == 0:
                probe, event_id = canary(token, index // CANARY_EVERY)
                out.append((probe, send("127.0.0.1", port, probe), event_id))
            return out

        for future in [pool.submit(one, i, case) for i, case in enumerate(fast)]:
            for item in future.result():
                if len(item) == 3:
                    canaries.append(item)
                else:
                    answers.append(item)
        for future, case in slow_futures.items():
            answers.append((case, future.result()))
    return answers, canaries


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class ApiUnderTest:
    """The stack's own API; under --sabotage, a second API (gunicorn, same Kafka, same
    settings) started with the sabotage applied, since the shared stack runs unbroken."""

    def __init__(self, stack, sabotaged, sabotage_env, tmp_path: Path) -> None:
        self.stack, self.sabotaged, self.env, self.tmp = stack, sabotaged, sabotage_env, tmp_path
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> int:
        if not self.sabotaged:
            return self.stack.ports["API"]
        from questlog_embedded.process import free_port

        port = free_port()
        env = dict(os.environ)
        for line in (self.stack.var / "run.env").read_text().splitlines():
            name, _, value = line.partition("=")
            if name:
                env[name] = value
        env.update(
            self.env,
            QUESTLOG_API_BIND=f"127.0.0.1:{port}",
            QUESTLOG_API_WORKERS="1",
            PROMETHEUS_MULTIPROC_DIR=str(self.tmp / "metrics"),
        )
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.log = open(self.tmp / "api.log", "wb")
        self.proc = subprocess.Popen(
            [str(gunicorn), "-c", "services/api/gunicorn.conf.py", "questlog_api:create_app()"],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while _status(f"http://127.0.0.1:{port}/readyz") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(
                    "the sabotaged API did not start: " + (self.tmp / "api.log").read_text()[-3000:]
                )
            time.sleep(0.5)
        return port

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()


def _kafka_tally(stack, token: str) -> dict:
    """Every record of the topic, from the beginning to the end offsets of now: how many
    carry a hostile marker, and how often each canary event id appears."""
    from kafka import KafkaConsumer, TopicPartition

    hostile_marker = re.compile(re.escape(token).encode() + rb"-\d")
    canary_ids: collections.Counter = collections.Counter()
    hostile, examples = 0, []
    consumer = KafkaConsumer(
        bootstrap_servers=f"127.0.0.1:{stack.ports['KAFKA']}",
        enable_auto_commit=False,
        group_id=None,
        request_timeout_ms=30000,
    )
    try:
        topic = stack.env.get("QUESTLOG_API_TOPIC", "events")
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError("reading the events topic took more than 120 s")
            for batch in consumer.poll(timeout_ms=500).values():
                for rec in batch:
                    blob = (rec.key or b"") + b"\n" + (rec.value or b"")
                    if hostile_marker.search(blob):
                        hostile += 1
                        examples.append(blob[:160])
                    elif token.encode() in blob:
                        canary_ids[json.loads(rec.value)["event_id"]] += 1
    finally:
        consumer.close()
    return {
        "hostile": hostile,
        "examples": examples[:3],
        "canary_ids": set(canary_ids),
        "canary_copies": sum(n - 1 for n in canary_ids.values()),
    }


def _sql(stack, sql: str, params: list) -> list[dict]:
    read_token = (stack.var / "secrets" / "query_read_token").read_text().strip()
    req = urllib.request.Request(
        f"{stack.query}/v1/sql",
        data=json.dumps({"sql": sql, "params": params}).encode(),
        headers={"Authorization": f"Bearer {read_token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read())["rows"]


def _lake_tally(stack, token: str, expected_ids: set[str]) -> dict:
    """Wait (bounded) until every accepted canary is in the tables, then count this run's
    hostile markers there and anything of this run in the quarantine."""
    like, hostile_like = f"%{token}%", f"%{token}-_%"
    canary_like = f"%{token}-ok-%"
    ids: collections.Counter = collections.Counter()
    deadline = time.monotonic() + LAKE_WAIT_S
    waited = False
    while time.monotonic() < deadline:
        try:
            rows = _sql(
                stack, "SELECT event_id FROM purchase_sword WHERE player_id LIKE $1", [canary_like]
            )
        except OSError:
            rows = []
        ids = collections.Counter(row["event_id"] for row in rows)
        if expected_ids <= set(ids):
            waited = True
            break
        time.sleep(1)
    hostile = 0
    for table, columns in (
        ("purchase_sword", ("player_id", "sword_type", "host", "session_id")),
        ("join_guild", ("player_id", "guild_id", "host", "session_id")),
    ):
        hit = " OR ".join(f"({c} LIKE $1 AND {c} NOT LIKE $2)" for c in columns)
        hostile += _sql(
            stack, f"SELECT count(*) AS n FROM {table} WHERE {hit}", [hostile_like, canary_like]
        )[0]["n"]
    quarantined = _sql(
        stack, "SELECT count(*) AS n FROM quarantine WHERE raw_value LIKE $1", [like]
    )[0]["n"]
    return {
        "ids": set(ids),
        "copies": sum(n - 1 for n in ids.values()),
        "hostile": hostile,
        "quarantined": quarantined,
        "waited": waited,
    }
