"""The API as deployed: gunicorn with services/api/gunicorn.conf.py, two workers, a real
broker. Metrics add up across workers; SIGTERM loses no acknowledged event."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def server(kafka, tmp_path):
    topic = f"gunicorn-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=3)
    port = free_port()
    env = {
        **os.environ,
        "QUESTLOG_API_BIND": f"127.0.0.1:{port}",
        "QUESTLOG_API_WORKERS": "2",
        "QUESTLOG_API_THREADS": "8",
        "QUESTLOG_API_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "QUESTLOG_API_TOPIC": topic,
        "QUESTLOG_API_SINK": "confluent",
        "QUESTLOG_API_IP_HASH_KEY": "gunicorn-test-ip-key-0123",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "questlog_api:create_app()"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")
    try:
        yield {"port": port, "proc": proc, "topic": topic, "log": log_path}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_metrics_add_up_across_workers(server):
    port = server["port"]
    headers = {"Host": "user1.comcast.com", "Cookie": "sid=GUNICORN-CANARY"}
    statuses = []

    def hit():
        for _ in range(10):
            statuses.append(request(port, "GET", "/buy_a_sword", headers=headers)[0])

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 40
    assert request(port, "GET", "/readyz")[0] == 200
    status, body = request(port, "GET", "/metrics")
    assert status == 200
    text = body.decode()
    match = re.search(
        r'questlog_api_events_accepted_total\{event_type="purchase_sword"\} (\S+)', text
    )
    assert match, text[:2000]
    assert float(match.group(1)) == 40.0
    server["proc"].send_signal(signal.SIGTERM)
    server["proc"].wait(30)
    logs = server["log"].read_text()
    assert "GUNICORN-CANARY" not in logs
    request_lines = [
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith("{") and '"msg": "request"' in line
    ]
    assert len(request_lines) >= 40
    assert all("request_id" in line for line in request_lines)


def test_sigterm_loses_no_acknowledged_event(server, kafka):
    from kafka import KafkaConsumer

    port = server["port"]
    accepted: list[str] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            body = json.dumps(
                [
                    {
                        "event_type": "join_guild",
                        "player_id": "p",
                        "event_id": str(uuid.uuid4()),
                        "properties": {"guild_id": "g"},
                    }
                    for _ in range(20)
                ]
            )
            try:
                status, reply = request(
                    port,
                    "POST",
                    "/v1/events",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
            except OSError:
                return
            if status == 202:
                accepted.extend(json.loads(reply)["event_ids"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    server["proc"].send_signal(signal.SIGTERM)
    assert server["proc"].wait(30) == 0
    stop.set()
    for t in threads:
        t.join(15)
    assert accepted

    consumer = KafkaConsumer(
        server["topic"],
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and not set(accepted) <= seen:
            for batch in consumer.poll(timeout_ms=500).values():
                seen.update(json.loads(rec.value)["event_id"] for rec in batch)
    finally:
        consumer.close()
    assert set(accepted) <= seen, f"{len(set(accepted) - seen)} acknowledged events missing"
