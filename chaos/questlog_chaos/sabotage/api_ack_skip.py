"""T1's mechanism off: the API answers 2xx as soon as librdkafka holds the events, without
waiting for Kafka's acknowledgement (fire and forget)."""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_api.sink import NOT_PERSISTED, ConfluentSink, SinkUnavailable, encode

    def send_without_ack(self, events):
        if not self.in_flight.try_acquire(len(events)):
            raise SinkUnavailable("too many events in flight", NOT_PERSISTED)
        producer = self._get_producer()
        release = self.in_flight.release
        for event in events:
            key, value = encode(event)
            producer.produce(
                self.settings.topic, value, key, on_delivery=lambda _err, _msg: release(1)
            )

    patch.setattr(ConfluentSink, "send_many", send_without_ack)
