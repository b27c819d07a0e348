"""BASELINE, not questlog: the walkthrough's mobileGame_api.py, for `make bench` only.

Usage:
    QUESTLOG_BASELINE_KAFKA=127.0.0.1:9092 FLASK_APP=bench/baselines/walkthrough_api.py \
        flask run --host 127.0.0.1 --port 5100
"""

import json
import os

from flask import Flask, request
from kafka import KafkaProducer

app = Flask(__name__)
event_logger = KafkaProducer(
    bootstrap_servers=os.environ.get("QUESTLOG_BASELINE_KAFKA", "127.0.0.1:9092")
)
events_topic = os.environ.get("QUESTLOG_BASELINE_TOPIC", "events")


def log_to_kafka(topic, event):
    event.update(request.headers)
    event_logger.send(topic, json.dumps(event).encode())


@app.route("/join_guild")
@app.route("/join_a_guild")
def join_guild():
    join_guild_event = {"event_type": "join_guild"}
    log_to_kafka(events_topic, join_guild_event)
    return "\nGuild joined!\n"


@app.route("/purchase_sword")
@app.route("/purchase_a_sword")
@app.route("/buy_a_sword")
def purchase_sword():
    buy_sword_event = {"event_type": "purchase_sword"}
    sword_parameter = request.args.to_dict()
    buy_sword_event.update(sword_parameter)
    log_to_kafka(events_topic, buy_sword_event)
    return "\nSword Purchased!\n"
