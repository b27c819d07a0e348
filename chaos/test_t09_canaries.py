"""T9: secrets and PII sent to the API are stored nowhere; the client IP only as its keyed
pseudonym.

Every request carries unique canary strings in ``Authorization``, ``Cookie`` and
``X-Api-Key`` (plus a forged ``X-Forwarded-For`` address, which the API must not trust
with no proxy configured). Canaries also travel in the body where the contract has no
place for them: a client-sent ``context`` (the server replaces it: accepted, canary
dropped), unknown top-level and property fields, a canary as a field *name*, a query
parameter of a legacy route, malformed JSON, a body over the size limit (all refused).
Then every place data lands is read: the Kafka topic (every record), every lake table
(every committed row, quarantine included), and every file under the stack's var dir
(logs, Kafka's segments, Delta logs and Parquet, checkpoints). Zero occurrences.

Each scan proves it can see: the run's events (their user agent) must be found in Kafka
and the tables, a record produced straight to Kafka that the extractor quarantines must be
found in the quarantine, and the request ids must be found in the API's log.

With the sabotage on, the traffic goes to an API process of its own (the shared stack
was started without it), with the stack's settings and its log under the stack's var.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mmap
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from questlog_chaos.report import Result
from questlog_chaos.traffic import JSON, ApiProcess, event, request, topic_records
from questlog_loadtest import verify

LOOPBACK = "127.0.0.1"


def run_env(var: Path) -> dict[str, str]:
    """The settings every process of the stack got (var/run.env)."""
    env = {}
    for line in (var / "run.env").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[name.strip()] = value.strip()
    return env


def file_hits(root: Path, needles: list[bytes]) -> dict[str, list[str]]:
    """needle -> files under ``root`` holding it (raw bytes, every file)."""
    hits: dict[str, list[str]] = {n.decode(): [] for n in needles}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.stat().st_size == 0:
            continue
        try:
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                for needle in needles:
                    if m.find(needle) != -1:
                        hits[needle.decode()].append(str(path.relative_to(root)))
        except (OSError, ValueError):  # a file removed or truncated under us
            continue
    return hits


def table_rows(lake: Path) -> dict[str, pa.Table]:
    """Every committed row of every table, read through the Delta log."""
    tables = {}
    for folder in sorted((lake / "tables").glob("*")):
        if (folder / "_delta_log").is_dir():
            tables[folder.name] = DeltaTable(folder.as_uri()).to_pyarrow_table()
    return tables


def count_in_table(table: pa.Table, needle: str) -> int:
    hits = 0
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            hits += pc.sum(pc.match_substring(column, needle)).as_py() or 0
    return hits


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.sabotage("canary_leak")
def test_t09_canaries_are_stored_nowhere(stack, scale, record, sabotaged, sabotage_env):
    tag = uuid.uuid4().hex[:10]
    canary = f"qlcanary{tag}"  # every canary starts with this: one search finds them all
    forged_ip = f"203.0.113.{int(tag[:2], 16) % 250 + 2}"
    run = f"t09-{tag}"
    host = f"{run}.example"
    agent = f"questlog-t09-agent-{tag}"
    env = run_env(stack.var)
    ip_key = env["QUESTLOG_API_IP_HASH_KEY"].encode()
    pseudonym = hmac.new(ip_key, LOOPBACK.encode(), hashlib.sha256).hexdigest()[:32]
    valid = scale.pick(12, 120)
    result = Result("T9", "secret and PII canaries, IP pseudonyms")

    def secret_headers(i: int) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {canary}-auth-{i}",
            "Cookie": f"session={canary}-cookie-{i}; theme=dark",
            "X-Api-Key": f"{canary}-apikey-{i}",
            "X-Forwarded-For": forged_ip,
            "Host": host,
            "User-Agent": agent,
            "X-Request-ID": f"t09req{tag}{i}",
        }

    if sabotaged:
        api_proc = ApiProcess(
            {k: v for k, v in env.items() if k.startswith("QUESTLOG_API_")} | sabotage_env,
            stack.var / f"t09-api-{tag}.log",
            workers=1,
        )
        api = api_proc.__enter__().url
    else:
        api_proc, api = None, stack.api
    answers: Counter[str] = Counter()
    accepted_ids: list[str] = []
    try:
        for i in range(valid):  # valid events, some with a client-sent context of canaries
            ev = event("purchase_sword" if i % 3 else "join_guild", f"{run}-p{i % 4}")
            if i % 2:
                ev["context"] = {"cookie": f"{canary}-ctx-{i}", "host": f"{canary}-ctxhost"}
            batch = [ev, event("purchase_sword", f"{run}-p9")] if i % 4 == 3 else ev
            answer = request(
                "POST",
                f"{api}/v1/events",
                json.dumps(batch).encode(),
                {**JSON, **secret_headers(i)},
            )
            answers[f"valid {answer.status}"] += 1
            if answer.status == 202:
                accepted_ids += answer.json()["event_ids"]
        legacy = request(
            "GET", f"{api}/purchase_sword?sword_type=katana", headers=secret_headers(1000)
        )
        answers[f"valid {legacy.status}"] += 1
        if legacy.status == 200:
            accepted_ids.append(legacy.headers["x-event-id"])
        refused = {
            "unknown top-level field": {
                **event("purchase_sword", f"{run}-x"),
                "ssn": f"{canary}-ssn",
            },
            "unknown property": event("purchase_sword", f"{run}-x", password=f"{canary}-password"),
            "canary as a field name": event("join_guild", f"{run}-x", **{f"{canary}-name": 1}),
            "canary in a batch's bad event": [
                event("join_guild", f"{run}-x"),
                {"event_type": f"{canary}-type"},
            ],
        }
        for i, (name, body) in enumerate(refused.items()):
            answer = request(
                "POST",
                f"{api}/v1/events",
                json.dumps(body).encode(),
                {**JSON, **secret_headers(2000 + i)},
            )
            answers[f"refused {answer.status}"] += 1
            result.check(answer.status == 422, f"{name}: {answer.status}, expected 422")
        for name, path, body, status in (
            ("legacy query parameter", f"/join_guild?guild_id=g&token={canary}-query", None, 422),
            ("malformed JSON", "/v1/events", f'{{"password": "{canary}-json"'.encode(), 400),
            (
                "over the size limit",
                "/v1/events",
                json.dumps({"pad": f"{canary}-big-" * 80_000}).encode(),
                413,
            ),
        ):
            answer = request(
                "GET" if body is None else "POST",
                api + path,
                body,
                {**JSON, **secret_headers(3000 + len(answers))},
            )
            answers[f"refused {answer.status}"] += 1
            result.check(answer.status == status, f"{name}: {answer.status}, expected {status}")
    finally:
        if api_proc is not None:
            api_proc.__exit__(None, None, None)
    result.errors_5xx = sum(n for k, n in answers.items() if k.split()[1].startswith("5"))

    # the quarantine's control: a record the extractor must quarantine, straight to Kafka
    quarantine_mark = f"t09-quarantine-control-{tag}"
    bootstrap = env["QUESTLOG_API_KAFKA_BOOTSTRAP"]
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(env["QUESTLOG_API_TOPIC"], value=f'{{"oops": "{quarantine_mark}"', key=run)
    result.check(producer.flush(30) == 0, "the quarantine control was not produced")

    # wait until the run is in the tables and the control in the quarantine (the first
    # scenario on a fresh stack also waits for the extractor's first, cold, batch)
    token = (stack.var / "secrets" / "query_read_token").read_text().strip()
    deadline = time.monotonic() + 300
    while True:
        seen = verify.sql(
            stack.query,
            token,
            (
                "SELECT (SELECT count(*) FROM purchase_sword WHERE host = $h) + "
                "(SELECT count(*) FROM join_guild WHERE host = $h) AS events, "
                "(SELECT count(*) FROM quarantine WHERE contains(raw_value, $q)) AS quarantined"
            ),
            {"h": host, "q": quarantine_mark},
        )["rows"][0]
        if (
            seen["events"] >= len(accepted_ids) and seen["quarantined"]
        ) or time.monotonic() > deadline:
            break
        time.sleep(1)
    result.check(
        seen["events"] == len(accepted_ids),
        f"{seen['events']} of {len(accepted_ids)} accepted events stored",
    )
    result.check(seen["quarantined"] == 1, "the quarantine control was not quarantined")

    # Kafka: every record of the topic
    records = topic_records(bootstrap, env["QUESTLOG_API_TOPIC"])
    kafka_hits = sum(canary.encode() in (k or b"") + v for k, v in records)
    kafka_ip = sum(forged_ip.encode() in v for _, v in records)
    mine = [json.loads(v) for _, v in records if agent.encode() in v]
    result.check(
        len(mine) == len(accepted_ids),
        f"Kafka holds {len(mine)} of the run's {len(accepted_ids)} accepted events",
    )
    bad_context = [
        e["context"]
        for e in mine
        if set(e["context"]) - {"host", "user_agent", "accept", "client_ip_hash"}
        or e["context"].get("client_ip_hash") != pseudonym
        or e["context"].get("host") != host
    ]
    raw_ip = sum(LOOPBACK in json.dumps(e) for e in mine)
    result.check(kafka_hits == 0, f"{kafka_hits} Kafka records hold a canary")
    result.check(kafka_ip == 0, f"{kafka_ip} Kafka records hold the forged X-Forwarded-For")
    result.check(
        not bad_context,
        f"{len(bad_context)} contexts are not the allow-listed "
        f"fields with the keyed pseudonym, e.g. {bad_context[:1]}",
    )
    result.check(raw_ip == 0, f"{raw_ip} of the run's Kafka records hold {LOOPBACK}")

    # the tables, quarantine included: every committed row
    tables = table_rows(stack.var / "lake")
    table_hits = {name: count_in_table(t, canary) for name, t in tables.items()}
    table_ip = {name: count_in_table(t, forged_ip) for name, t in tables.items()}
    stored_mine = [
        r
        for name, t in tables.items()
        if name != "quarantine"
        for r in t.filter(pc.equal(t["user_agent"], agent))
        .select(["player_id", "host", "user_agent", "accept", "client_ip_hash"])
        .to_pylist()
    ]
    result.check(
        len(stored_mine) == len(accepted_ids),
        f"the tables hold {len(stored_mine)} of {len(accepted_ids)} accepted events",
    )
    result.check(
        all(
            r["client_ip_hash"] == pseudonym and LOOPBACK not in json.dumps(r) for r in stored_mine
        ),
        "a stored row of the run lacks the keyed pseudonym or holds the raw IP",
    )
    result.check(
        "quarantine" in tables and count_in_table(tables["quarantine"], quarantine_mark) == 1,
        "the quarantine scan did not see its control",
    )
    result.check(not any(table_hits.values()), f"canaries in the tables: {table_hits}")
    result.check(not any(table_ip.values()), f"forged IP in the tables: {table_ip}")

    # every file under var: logs, Kafka segments, Delta logs and Parquet, checkpoints
    files = file_hits(stack.var, [canary.encode(), forged_ip.encode(), f"t09req{tag}".encode()])
    result.check(not files[canary], f"canaries in files under var: {files[canary][:5]}")
    result.check(not files[forged_ip], f"forged IP in files under var: {files[forged_ip][:5]}")
    result.check(
        bool(files[f"t09req{tag}"]), "the API's log under var does not show the run's request ids"
    )

    which = "a sabotaged API" if sabotaged else "the stack's API"
    result.load = f"{sum(answers.values())} requests through {which}"
    result.inputs = (
        f"canaries in Authorization, Cookie, X-Api-Key, client context, "
        f"unknown fields, field names, query, bad JSON, oversize; forged XFF; "
        f"answers {dict(sorted(answers.items()))}"
    )
    result.figures = {
        "canary hits Kafka/tables/files": f"{kafka_hits}/{sum(table_hits.values())}/"
        f"{len(files[canary])}",
        "records scanned": f"{len(records)} Kafka, {sum(t.num_rows for t in tables.values())} rows",
        "files scanned": str(sum(1 for p in stack.var.rglob("*") if p.is_file())),
        "IP": f"pseudonym {pseudonym[:8]}... on {len(stored_mine)} rows, raw 0",
    }
    record(result)
