"""T4's mechanism off: a worker answers 2xx once librdkafka holds the events (no wait for
Kafka's acknowledgement) and leaves without flushing them: what an API that relies on a
shutdown flush instead of the ack loses when a worker is killed or stopped."""

from __future__ import annotations

from questlog_chaos.sabotage import api_ack_skip


def apply(patch) -> None:
    from questlog_api.sink import ConfluentSink

    api_ack_skip.apply(patch)
    patch.setattr(ConfluentSink, "close", lambda self, timeout_s: None)
