"""The OpenAPI 3.1 document of this service, written by hand; event shapes come from the
schema registry so they never drift from what the API validates."""

from __future__ import annotations

import copy
from typing import Any

from questlog_api.routes.legacy import ROUTES as LEGACY_ROUTES
from questlog_api.settings import Settings
from questlog_schemas import Registry

SERVER_OWNED = ("received_at", "context")


def _strip(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in {"$schema", "$id"}}


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def _unavailable(single_event: bool) -> dict[str, Any]:
    """The 503: refused, with whether the events may still land and their ids."""
    response = _error(
        "Kafka did not acknowledge in time, or the in-flight cap is full. "
        "details.persistence says whether any event of the request may still be stored "
        "(possibly_persisted) or none was (not_persisted); either way retry with the "
        "same event_id (details.event_ids), and each event is stored once.",
        retry_after=True,
    )
    response["content"] = {
        "application/json": {"schema": {"$ref": "#/components/schemas/Unavailable"}}
    }
    response["headers"]["X-Event-Persistence"] = {
        "description": "not_persisted or possibly_persisted (as details.persistence)",
        "schema": {"$ref": "#/components/schemas/Persistence"},
    }
    if single_event:
        response["headers"]["X-Event-Id"] = {
            "description": "the refused event's id: send it back to retry",
            "schema": {"type": "string", "format": "uuid"},
        }
    return response


ERRORS = {
    "400": _error("malformed body (not JSON/NDJSON, NaN/Infinity, no events)"),
    "401": _error("write keys are configured and none valid was presented"),
    "413": _error("body over MAX_BODY_BYTES or more than MAX_BATCH_EVENTS events"),
    "422": _error("schema violation; nothing of the request was produced"),
    "429": _error("rate limited", retry_after=True),
    "503": _unavailable(single_event=False),
}

EVENT_ID_PARAMETERS = [
    {
        "name": "event_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "uuid"},
        "description": "the client's idempotency key (never a property); a retry that "
        "sends the same id is stored once",
    },
    {
        "name": "X-Event-Id",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "format": "uuid"},
        "description": "the same key as a header; when both are sent they must agree",
    },
]


def event_in_schema(registry: Registry) -> dict[str, Any]:
    """What a client sends: the envelope without the server-owned fields, one branch per
    registered type with that type's properties schema."""
    envelope = _strip(copy.deepcopy(registry.envelope_schema))
    fields = {k: v for k, v in envelope["properties"].items() if k not in SERVER_OWNED}
    branches = []
    for name in registry.event_types:
        typed = copy.deepcopy(fields)
        typed["event_type"] = {"type": "string", "const": name}
        typed["properties"] = _strip(copy.deepcopy(registry.get(name).properties_schema))
        branches.append(
            {
                "type": "object",
                "title": name,
                "properties": typed,
                # received_at and context are set by the server; a client value is replaced
                "additionalProperties": True,
                "required": ["event_type", "properties"],
            }
        )
    return {
        "oneOf": branches,
        "description": "player_id may be left out when the Host header names the "
        "player; event_id (a UUID) is the idempotency key.",
    }


def document(registry: Registry, settings: Settings) -> dict[str, Any]:
    security: list[dict[str, list[str]]] = (
        [{"bearer": []}, {"writeKey": []}] if settings.write_keys else []
    )
    legacy_paths: dict[str, Any] = {}
    for event_type, spec in LEGACY_ROUTES.items():
        props = registry.get(event_type).properties_schema.get("properties", {})
        parameters = [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {
                    k: v
                    for k, v in field.items()
                    if k in {"type", "maxLength", "minimum", "maximum", "enum", "pattern"}
                },
                "description": f"property {name}"
                + (f" (default {spec['defaults'][name]!r})" if name in spec["defaults"] else ""),
            }
            for name, field in props.items()
        ] + EVENT_ID_PARAMETERS
        for rule in spec["rules"]:
            legacy_paths[rule] = {
                "get": {
                    "summary": f"record a {event_type} event (the original client's route)",
                    "operationId": f"legacy{rule.replace('/', '_')}",
                    "tags": ["legacy"],
                    "parameters": parameters,
                    "security": security,
                    "responses": {
                        "200": {
                            "description": "acknowledged by Kafka",
                            "headers": {
                                "X-Event-Id": {
                                    "description": "the stored event's id",
                                    "schema": {"type": "string", "format": "uuid"},
                                }
                            },
                            "content": {
                                "text/html": {"schema": {"type": "string", "const": spec["reply"]}}
                            },
                        },
                        **{k: v for k, v in ERRORS.items() if k not in {"413", "400", "503"}},
                        "400": _error("event_id / X-Event-Id is not a UUID, or the two differ"),
                        "503": _unavailable(single_event=True),
                    },
                }
            }
    event_in = {"$ref": "#/components/schemas/EventIn"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "questlog event API",
            "version": "1.0.0",
            "description": "Durable, validated ingestion of game events into Kafka. A 2xx "
            "means Kafka (acks=all) holds every event of the request.",
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/v1/events": {
                "post": {
                    "summary": "send one event, a JSON array of events, or NDJSON",
                    "operationId": "postEvents",
                    "tags": ["events"],
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        event_in,
                                        {
                                            "type": "array",
                                            "items": event_in,
                                            "minItems": 1,
                                            "maxItems": settings.max_batch_events,
                                        },
                                    ]
                                }
                            },
                            "application/x-ndjson": {
                                "schema": {
                                    "type": "string",
                                    "description": "one event object per line",
                                }
                            },
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "every event acknowledged by Kafka",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Accepted"}
                                }
                            },
                        },
                        "415": _error(
                            "Content-Type is not application/json or application/x-ndjson"
                        ),
                        **ERRORS,
                    },
                }
            },
            **legacy_paths,
            "/healthz": {
                "get": {
                    "summary": "liveness: the process answers",
                    "operationId": "healthz",
                    "tags": ["ops"],
                    "responses": {"200": _status_response("alive")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "readiness: Kafka answers a metadata request through the "
                    "producer (cached 1 s), the topic exists, the in-flight cap "
                    "has room",
                    "operationId": "readyz",
                    "tags": ["ops"],
                    "responses": {
                        "200": _status_response("ready"),
                        "503": _status_response("not ready", retry_after=True),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of every worker",
                    "operationId": "metrics",
                    "tags": ["ops"],
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "operationId": "openapi",
                    "tags": ["ops"],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "EventIn": event_in_schema(registry),
                "Envelope": _strip(copy.deepcopy(registry.envelope_schema)),
                "Accepted": {
                    "type": "object",
                    "properties": {
                        "accepted": {"type": "integer", "minimum": 1},
                        "event_ids": {
                            "type": "array",
                            "items": {"type": "string", "format": "uuid"},
                        },
                    },
                    "required": ["accepted", "event_ids"],
                },
                "Persistence": {"type": "string", "enum": ["not_persisted", "possibly_persisted"]},
                "Unavailable": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string", "const": "unavailable"},
                                "message": {"type": "string"},
                                "details": {
                                    "type": "object",
                                    "properties": {
                                        "reason": {"type": "string"},
                                        "persistence": {"$ref": "#/components/schemas/Persistence"},
                                        "event_ids": {
                                            "type": "array",
                                            "items": {"type": "string", "format": "uuid"},
                                        },
                                    },
                                    "required": ["reason", "persistence", "event_ids"],
                                },
                            },
                            "required": ["code", "message", "details"],
                        }
                    },
                    "required": ["error"],
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {"type": "object"},
                            },
                            "required": ["code", "message", "details"],
                        }
                    },
                    "required": ["error"],
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "writeKey": {"type": "apiKey", "in": "header", "name": "X-Questlog-Key"},
            },
        },
    }


def _status_response(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
                    "required": ["status"],
                }
            }
        },
    }
    if retry_after:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return response
