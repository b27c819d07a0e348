"""T9: the API lets the Cookie header into the event's context.

The allow-list of request headers that may reach Kafka gains ``Cookie``, written into the
schema's ``accept`` field (a context field of its own would be refused by the envelope
schema, and nothing would leak): every cookie then lands in Kafka and the tables.
"""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_api import envelope, ingest

    leaky = {**envelope.CONTEXT_HEADERS, "Cookie": "accept"}
    patch.setattr(envelope, "CONTEXT_HEADERS", leaky)
    patch.setattr(
        ingest,
        "_CONTEXT_KEYS",
        {header: "HTTP_" + header.upper().replace("-", "_") for header in leaky},
    )
