import io
import json
import logging

import pytest

from questlog_service import logs


@pytest.fixture
def emit():
    """``emit(level, msg, **kwargs)`` -> the one JSON line it wrote, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("questlog-test"))
    log = logging.getLogger("questlog_test.logs")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False

    def emit(level, msg, *args, **kwargs):
        stream.seek(0)
        stream.truncate()
        log.log(level, msg, *args, **kwargs)
        return json.loads(stream.getvalue())

    yield emit
    log.removeHandler(handler)


def test_the_keys_in_order_and_their_shape(emit):
    line = emit(logging.WARNING, "hello %s", "world")
    assert list(line) == list(logs.KEYS)
    assert line["msg"] == "hello world"
    assert line["level"] == "warning"
    assert line["service"] == "questlog-test"
    assert line["logger"] == "questlog_test.logs"
    assert line["ts"].endswith("Z")
    assert len(line["ts"]) == len("2026-12-01T08:00:00.123Z")


def test_request_id_comes_from_the_contextvar_only_when_set(emit):
    assert "request_id" not in emit(logging.INFO, "outside")
    token = logs.REQUEST_ID.set("req-7")
    try:
        assert emit(logging.INFO, "inside")["request_id"] == "req-7"
    finally:
        logs.REQUEST_ID.reset(token)


def test_extra_fields_flat_or_under_fields_never_replace_the_keys(emit):
    line = emit(
        logging.INFO,
        "batch",
        extra={
            "route": "/x",
            "level_": 1,
            "service": "forged",
            "fields": {"batch_id": 3, "args": "a name LogRecord reserves", "msg": "forged"},
        },
    )
    assert (line["route"], line["batch_id"], line["args"]) == ("/x", 3, "a name LogRecord reserves")
    assert (line["service"], line["msg"]) == ("questlog-test", "batch")
    assert "fields" not in line


def test_an_exception_gives_its_type_and_traceback(emit):
    try:
        raise KeyError("boom")
    except KeyError:
        line = emit(logging.ERROR, "failed", exc_info=True)
    assert line["exc_type"] == "KeyError"
    assert "Traceback" in line["traceback"]
    assert "boom" in line["traceback"]


def test_configure_logging_is_idempotent_and_quiets_chatty_clients():
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logs.configure_logging("questlog-test", "INFO", stream)
        logs.configure_logging("questlog-test", "INFO", stream)
        ours = [h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter)]
        assert len(ours) == 1
        assert logging.getLogger("kafka").level == logging.WARNING
        logging.getLogger("questlog_test.configured").info("one line")
        assert json.loads(stream.getvalue())["msg"] == "one line"
    finally:
        root.handlers[:] = before
        root.setLevel(level)
