"""The hostile corpora: requests the event API must refuse (T5) and SQL the query sandbox
must refuse or neutralise (T8), plus the raw-socket client that sends the requests.

Every API case is a complete HTTP/1.1 request as bytes, so what a library would refuse to
send (CR in a header, a Content-Length that lies, a body that trickles in) is sent as is.
Each carries ``marker`` (the run's token and the case's index) in its body or URL, so
finding the token in Kafka or in a table proves a refused request was stored anyway.

Usage::

    cases = api_cases(token)                     # the fixed corpus, >= 200 cases
    cases += mutations(token, random.Random(17), 2000)   # full scale: seeded mutations
    answer = send("127.0.0.1", port, cases[0])   # Answer(status, headers, body, seconds)
"""

from __future__ import annotations

import json
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# ------------------------------------------------------------------ the raw HTTP client


@dataclass(frozen=True)
class HttpCase:
    name: str  # "group/what", e.g. "utf8/overlong-slash"
    raw: bytes  # the whole request: request line, headers, body
    marker: str
    trickle_s: float = 0.0  # > 0: the body is sent one byte at a time, this far apart
    stall: bool = False  # send the head and part of the body, then wait for the answer

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass
class Answer:
    status: int  # 0: no HTTP answer at all (connection closed or timed out)
    head: bytes = b""
    body: bytes = b""
    seconds: float = 0.0
    error: str = ""


def request(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    host: str = "chaos.t5.test",
    content_type: str | None = "application/json",
    headers: list[tuple[str, str]] | None = None,
    length: int | str | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    """A request as bytes; ``length`` overrides the true Content-Length (``""``: none)."""
    lines = [f"{method} {target} {version}", f"Host: {host}", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if length is None:
        length = len(body) if body or method in ("POST", "PUT", "PATCH") else ""
    if length != "":
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def send(host: str, port: int, case: HttpCase, timeout: float = 30.0) -> Answer:
    """Send ``case`` over a fresh connection and read the first answer."""
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            head, _, body = case.raw.partition(b"\r\n\r\n")
            if case.trickle_s > 0:
                sock.sendall(head + b"\r\n\r\n")
                for index in range(len(body)):
                    sock.sendall(body[index : index + 1])
                    if _answered(sock, case.trickle_s):
                        break
            elif case.stall:
                sock.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
            else:
                try:
                    sock.sendall(case.raw)
                except OSError:  # the server answered and closed before taking it all
                    pass
            return _read_answer(sock, started, timeout)
    except OSError as exc:
        return Answer(0, seconds=time.monotonic() - started, error=repr(exc))


def _answered(sock: socket.socket, wait: float) -> bool:
    """Wait ``wait`` seconds; whether the server already started answering (or closed)."""
    sock.settimeout(wait)
    try:
        sock.recv(1, socket.MSG_PEEK)  # data (an answer) or b"" (closed): either way, done
        return True
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(None)


def _read_answer(sock: socket.socket, started: float, timeout: float) -> Answer:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        while length is not None and len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except OSError as exc:
        return Answer(0, data, b"", time.monotonic() - started, repr(exc))
    status_line = head.split(b"\r\n", 1)[0].split(b" ")
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    return Answer(
        status,
        head,
        body,
        time.monotonic() - started,
        "" if status else f"no status line: {data[:80]!r}",
    )


# ------------------------------------------------------------------ valid events

EVENTS = "/v1/events"


def valid_event(player: str, **changes) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase_sword",
        "player_id": player,
        "properties": {"sword_type": "katana", "price": 4.99, "currency": "USD", "quantity": 1},
    }
    event.update(changes)
    return event


def canary(token: str, index: int) -> tuple[HttpCase, str]:
    """A valid request, alternately POST /v1/events and the legacy GET; its event id."""
    event_id = str(uuid.uuid4())
    player = f"{token}-ok-{index}"
    if index % 2:
        raw = request(
            "GET",
            f"/buy_a_sword?sword_type=katana&event_id={event_id}",
            host=player,
            content_type=None,
        )
    else:
        raw = request("POST", EVENTS, _dumps(valid_event(player, event_id=event_id)))
    return HttpCase(f"canary/{index}", raw, player), event_id


def _dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ the fixed API corpus


@dataclass
class _Corpus:
    token: str
    cases: list[HttpCase] = field(default_factory=list)

    def marker(self) -> str:
        return f"{self.token}-{len(self.cases)}"

    def post(self, name: str, body: bytes | str, **kw) -> None:
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        self.raw(name, request("POST", EVENTS, body, **kw))

    def event(self, name: str, body_of, **kw) -> None:
        """``body_of(marker)`` -> the body (an event built around the marker as player)."""
        marker = self.marker()
        body = body_of(marker)
        if not isinstance(body, bytes | str):
            body = _dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        self.cases.append(HttpCase(name, request("POST", EVENTS, body, **kw), marker))

    def raw(self, name: str, raw: bytes, **kw) -> None:
        marker = self.marker()
        self.cases.append(HttpCase(name, raw.replace(b"MARKER", marker.encode()), marker, **kw))


def api_cases(token: str) -> list[HttpCase]:
    """The fixed hostile corpus (every case must be answered 4xx and store nothing)."""
    c = _Corpus(token)
    _invalid_json(c)
    _invalid_utf8(c)
    _nul_and_controls(c)
    _deep_nesting(c)
    _huge(c)
    _duplicate_keys(c)
    _numbers(c)
    _content_types(c)
    _http_level(c)
    _timestamps(c)
    _schema(c)
    _batches(c)
    _slow(c)
    return c.cases


def _ev(marker: str, **changes) -> dict:
    return valid_event(marker, **changes)


def _evtext(marker: str) -> str:
    return json.dumps(_ev(marker), separators=(",", ":"))


def _invalid_json(c: _Corpus) -> None:
    bodies = {
        "truncated-object": lambda m: _evtext(m)[:-1],
        "truncated-mid-string": lambda m: _evtext(m)[:30],
        "trailing-garbage": lambda m: _evtext(m) + "xyz",
        "two-objects": lambda m: _evtext(m) + _evtext(m),
        "trailing-comma": lambda m: _evtext(m)[:-1] + ",}",
        "single-quotes": lambda m: _evtext(m).replace('"', "'"),
        "unquoted-keys": lambda m: _evtext(m).replace('"player_id"', "player_id"),
        "comment": lambda m: "/* c */" + _evtext(m),
        "line-comment": lambda m: _evtext(m) + "// " + m,
        "array-trailing-comma": lambda m: "[" + _evtext(m) + ",]",
        "unclosed-array": lambda m: "[" + _evtext(m),
        "bare-string": lambda m: json.dumps(m),
        "bare-number": lambda m: "42",
        "bare-null": lambda m: "null",
        "bare-true": lambda m: "true",
        "empty-array": lambda m: "[]",
        "empty-body": lambda m: "",
        "whitespace-only": lambda m: " \n\t ",
        "array-of-scalars": lambda m: json.dumps([1, "two", m]),
        "nested-array-of-events": lambda m: "[[" + _evtext(m) + "]]",
        "leading-zero": lambda m: _evtext(m).replace('"quantity":1', '"quantity":01'),
        "hex-number": lambda m: _evtext(m).replace('"quantity":1', '"quantity":0x1'),
        "plus-number": lambda m: _evtext(m).replace('"quantity":1', '"quantity":+1'),
        "dot-number": lambda m: _evtext(m).replace('"price":4.99', '"price":.5'),
        "raw-tab-in-string": lambda m: _evtext(m).replace("katana", "kat\tana"),
        "raw-newline-in-string": lambda m: _evtext(m).replace("katana", "kat\nana"),
        "bad-escape": lambda m: _evtext(m).replace("katana", "kat\\qana"),
        "short-unicode-escape": lambda m: _evtext(m).replace("katana", "kat\\u12"),
        "utf8-bom": lambda m: "\ufeff" + _evtext(m),
        "python-literals": lambda m: _evtext(m).replace("4.99", "None"),
        "undefined": lambda m: _evtext(m).replace("4.99", "undefined"),
        "key-not-string": lambda m: _evtext(m).replace('"quantity"', "1"),
    }
    for name, body_of in bodies.items():
        c.event(f"json/{name}", body_of)
    ndjson = "application/x-ndjson"
    c.event("json/ndjson-bad-line", lambda m: _evtext(m) + "\n{oops}\n", content_type=ndjson)
    c.event("json/ndjson-array-line", lambda m: "[" + _evtext(m) + "]\n", content_type=ndjson)
    c.event("json/ndjson-scalar-line", lambda m: _evtext(m) + "\n7\n", content_type=ndjson)
    c.event("json/ndjson-blank-only", lambda m: "\n\n\n", content_type=ndjson)
    c.event(
        "json/ndjson-truncated", lambda m: _evtext(m) + "\n" + _evtext(m)[:40], content_type=ndjson
    )
    c.event(
        "json/ndjson-crlf-split-object",
        lambda m: _evtext(m).replace(",", ",\r\n", 1),
        content_type=ndjson,
    )


def _invalid_utf8(c: _Corpus) -> None:
    def spliced(raw: bytes):
        return lambda m: _evtext(m).encode().replace(b"katana", b"kat" + raw + b"ana")

    sequences = {
        "lone-continuation": b"\x80",
        "invalid-start-ff": b"\xff",
        "invalid-start-fe": b"\xfe",
        "overlong-slash": b"\xc0\xaf",
        "overlong-nul": b"\xc0\x80",
        "overlong-3byte": b"\xe0\x80\xaf",
        "encoded-surrogate": b"\xed\xa0\x80",
        "encoded-surrogate-pair": b"\xed\xa0\xbd\xed\xb2\xa9",
        "truncated-2byte": b"\xc3",
        "truncated-3byte": b"\xe2\x82",
        "truncated-4byte": b"\xf0\x9f\x98",
        "beyond-unicode": b"\xf4\x90\x80\x80",
        "five-byte": b"\xf8\x88\x80\x80\x80",
        "latin1-e-acute": b"\xe9",
    }
    for name, raw in sequences.items():
        c.event(f"utf8/{name}", spliced(raw))
    c.event("utf8/in-key", lambda m: _evtext(m).encode().replace(b'"price"', b'"pr\xffice"'))
    c.event(
        "utf8/in-player",
        lambda m: _evtext(m).encode().replace(m.encode(), m.encode() + b"\xc3\x28"),
    )
    c.event("utf8/utf16le-with-bom", lambda m: b"\xff\xfe" + _evtext(m).encode("utf-16-le"))
    c.event("utf8/utf16be-no-bom", lambda m: _evtext(m).encode("utf-16-be"))
    c.event("utf8/utf32le", lambda m: _evtext(m).encode("utf-32-le"))
    c.event(
        "utf8/utf16-declared-charset",
        lambda m: _evtext(m).encode("utf-16"),
        content_type="application/json; charset=utf-16",
    )
    for name, escape in {
        "lone-high": "\\ud800",
        "lone-low": "\\udc00",
        "reversed-pair": "\\udc00\\ud800",
        "high-then-ascii": "\\ud83dx",
    }.items():
        c.event(
            f"utf8/escaped-surrogate-{name}",
            lambda m, e=escape: _evtext(m).replace("katana", "kat" + e),
        )
    c.event("utf8/escaped-surrogate-in-player", lambda m: _evtext(m).replace(m, m + "\\udfff"))
    c.event(
        "utf8/escaped-surrogate-in-key", lambda m: _evtext(m).replace('"price"', '"pr\\ud800ice"')
    )


def _nul_and_controls(c: _Corpus) -> None:
    c.event("nul/raw-in-string", lambda m: _evtext(m).encode().replace(b"katana", b"kat\x00ana"))
    c.event("nul/raw-between-tokens", lambda m: _evtext(m).encode().replace(b",", b",\x00", 1))
    c.event("nul/raw-after-body", lambda m: _evtext(m).encode() + b"\x00")
    c.event("nul/raw-before-body", lambda m: b"\x00" + _evtext(m).encode())
    for field_name in ("player_id", "session_id", "event_id"):
        c.event(
            f"nul/escaped-in-{field_name}",
            lambda m, f=field_name: (
                _ev(m, **{f: m + "\x00"}) if f != "player_id" else _ev(m + "\x00")
            ),
        )
    c.event("nul/escaped-in-property", lambda m: _ev(m, properties={"sword_type": "a\x00b"}))
    c.event(
        "nul/escaped-in-key", lambda m: _ev(m, properties={"sword_type": "a", "sw\x00ord": "b"})
    )
    c.event("nul/escaped-only", lambda m: _ev(m, properties={"sword_type": "\x00"}))
    c.event("nul/escaped-in-event-type", lambda m: _ev(m, event_type="purchase_sword\x00"))
    controls = {
        "cr": "\r",
        "lf": "\n",
        "crlf": "\r\n",
        "tab": "\t",
        "bell": "\x07",
        "escape": "\x1b[31m",
        "backspace": "\x08",
        "unit-separator": "\x1f",
    }
    for name, char in controls.items():
        c.event(f"control/{name}-in-player", lambda m, ch=char: _ev(m + ch + "Set-Cookie: x=1"))
    c.event(
        "control/crlf-in-property",
        lambda m: _ev(m, properties={"sword_type": "katana\r\nX-Injected: 1"}),
    )
    c.event("control/lf-in-session", lambda m: _ev(m, session_id='s\n{"forged":1}'))
    # the legacy routes: query parameters become properties, the Host header the player
    for name, value in {
        "crlf": "%0d%0aSet-Cookie:%20x%3D1",
        "nul": "%00",
        "lf": "%0a",
        "cr": "%0d",
        "escape": "%1b%5b31m",
    }.items():
        c.raw(
            f"control/legacy-{name}-in-query",
            request("GET", f"/buy_a_sword?sword_type=MARKER{value}", content_type=None),
        )
    c.raw(
        "control/legacy-crlf-in-guild",
        request("GET", "/join_guild?guild_id=MARKER%0d%0a%0d%0a<html>", content_type=None),
    )
    c.raw(
        "control/legacy-tab-in-host",
        request(
            "GET", "/buy_a_sword?sword_type=katana", host="MARKER\tevil.example", content_type=None
        ),
    )


def _deep_nesting(c: _Corpus) -> None:
    for depth in (1_100, 10_000, 100_000):
        c.event(f"depth/arrays-{depth}", lambda m, d=depth: "[" * d + _evtext(m) + "]" * d)
        c.event(f"depth/objects-{depth}", lambda m, d=depth: '{"a":' * d + _evtext(m) + "}" * d)
    c.event("depth/unclosed-arrays-500k", lambda m: "[" * 500_000 + json.dumps(m))
    c.event(
        "depth/in-properties-3000",
        lambda m: _evtext(m).replace('"quantity":1', '"quantity":' + "[" * 3000 + "1" + "]" * 3000),
    )
    c.event(
        "depth/in-properties-200",
        lambda m: _evtext(m).replace(
            '"quantity":1', '"quantity":' + '{"x":' * 200 + "1" + "}" * 200
        ),
    )
    c.event(
        "depth/ndjson-deep-line",
        lambda m: _evtext(m) + "\n" + "[" * 50_000 + "]" * 50_000,
        content_type="application/x-ndjson",
    )


def _huge(c: _Corpus) -> None:
    mib = 1 << 20
    c.event("huge/player-1mib", lambda m: _ev(m + "p" * mib))
    c.event("huge/player-1000000", lambda m: _ev(m + "p" * 1_000_000))
    c.event("huge/player-129", lambda m: _ev((m + "p" * 129)[:129]))
    c.event("huge/sword-900k", lambda m: _ev(m, properties={"sword_type": "s" * 900_000}))
    c.event("huge/key-900k", lambda m: _ev(m, properties={"sword_type": "a", "k" * 900_000: 1}))
    c.event("huge/session-200k", lambda m: _ev(m, session_id="s" * 200_000))
    c.event(
        "huge/many-properties",
        lambda m: _ev(m, properties={"sword_type": "a", **{f"p{i}": i for i in range(50_000)}}),
    )
    c.event("huge/many-top-level-keys", lambda m: {**_ev(m), **{f"k{i}": 0 for i in range(50_000)}})
    c.event("huge/body-over-limit", lambda m: _evtext(m) + " " * (mib + 10))
    c.event("huge/body-5mib", lambda m: "[" + ",".join([_evtext(m)] * 30_000) + "]")
    c.event(
        "huge/number-10k-digits",
        lambda m: _evtext(m).replace('"quantity":1', '"quantity":' + "9" * 10_000),
    )
    c.event(
        "huge/float-10k-digits",
        lambda m: _evtext(m).replace('"price":4.99', '"price":0.' + "1" * 10_000 + "e999999"),
    )
    c.raw(
        "huge/content-length-1tb-no-body",
        request("POST", EVENTS, b'{"player_id":"MARKER"}', length=10**12),
    )
    c.raw(
        "huge/url-10k",
        request("GET", "/buy_a_sword?sword_type=MARKER&x=" + "a" * 10_000, content_type=None),
    )
    c.raw(
        "huge/header-16k",
        request("POST", EVENTS, b'{"player_id":"MARKER"}', headers=[("X-Big", "b" * 16_384)]),
    )
    c.raw(
        "huge/200-headers",
        request(
            "POST",
            EVENTS,
            b'{"player_id":"MARKER"}',
            headers=[(f"X-H{i}", "v") for i in range(200)],
        ),
    )


def _duplicate_keys(c: _Corpus) -> None:
    ev = _evtext
    cases = {
        "event-type": lambda m: ev(m)[:-1] + ',"event_type":"join_guild"}',
        "player": lambda m: ev(m)[:-1] + ',"player_id":"someone-else"}',
        "event-id": lambda m: ev(m)[:-1] + f',"event_id":"{uuid.uuid4()}"}}',
        "properties-object": lambda m: ev(m)[:-1] + ',"properties":{"sword_type":"x"}}',
        "in-properties": lambda m: ev(m).replace('"quantity":1', '"quantity":1,"quantity":2'),
        "sword-type": lambda m: ev(m).replace(
            '"sword_type":"katana"', '"sword_type":"katana","sword_type":"rapier"'
        ),
        "same-value": lambda m: ev(m).replace('"quantity":1', '"quantity":1,"quantity":1'),
        "with-spaces": lambda m: ev(m).replace('"quantity":1', '"quantity" : 1 , "quantity" : 2'),
        "unicode-escaped-key": lambda m: ev(m)[:-1] + ',"player\\u005fid":"someone-else"}',
        "escaped-quote-decoy": lambda m: (
            ev(m)
            .replace('"quantity":1', '"quantity":1,"quantity":2')
            .replace('"currency":"USD"', '"currency":"USD","session_id_x":"a\\":"')
        ),
        "schema-version": lambda m: ev(m)[:-1] + ',"schema_version":1,"schema_version":2}',
        "in-array-item": lambda m: "[" + ev(m) + "," + ev(m)[:-1] + ',"player_id":"x"}]',
        "pretty-printed": lambda m: (
            json.dumps(_ev(m), indent=2)[:-2] + ',\n  "player_id": "dup"\n}'
        ),
    }
    for name, body_of in cases.items():
        c.event(f"dupkeys/{name}", body_of)
    c.event(
        "dupkeys/ndjson-line",
        lambda m: ev(m) + "\n" + ev(m)[:-1] + ',"player_id":"z"}\n',
        content_type="application/x-ndjson",
    )


def _numbers(c: _Corpus) -> None:
    for name, literal in {
        "nan": "NaN",
        "infinity": "Infinity",
        "minus-infinity": "-Infinity",
        "1e309": "1e309",
        "minus-1e309": "-1e309",
        "1e400": "1e400",
        "nan-lower": "nan",
        "inf-lower": "inf",
    }.items():
        c.event(
            f"numbers/price-{name}",
            lambda m, v=literal: _evtext(m).replace('"price":4.99', f'"price":{v}'),
        )
    c.event(
        "numbers/quantity-1e309", lambda m: _evtext(m).replace('"quantity":1', '"quantity":1e309')
    )
    c.event("numbers/schema-version-nan", lambda m: _evtext(m)[:-1] + ',"schema_version":NaN}')
    c.event("numbers/price-negative", lambda m: _ev(m, properties={"sword_type": "a", "price": -1}))
    c.event(
        "numbers/quantity-2e19",
        lambda m: _evtext(m).replace('"quantity":1', '"quantity":20000000000000000000'),
    )
    c.event(
        "numbers/quantity-float", lambda m: _ev(m, properties={"sword_type": "a", "quantity": 1.5})
    )
    c.event(
        "numbers/quantity-zero", lambda m: _ev(m, properties={"sword_type": "a", "quantity": 0})
    )
    c.event(
        "numbers/price-string-nan", lambda m: _ev(m, properties={"sword_type": "a", "price": "NaN"})
    )
    c.event("numbers/price-bool", lambda m: _ev(m, properties={"sword_type": "a", "price": True}))


def _content_types(c: _Corpus) -> None:
    for name, ctype in {
        "text-plain": "text/plain",
        "form": "application/x-www-form-urlencoded",
        "multipart": "multipart/form-data; boundary=x",
        "xml": "application/xml",
        "octet": "application/octet-stream",
        "json-suffix": "application/vnd.questlog+json",
        "jsonx": "application/jsonx",
        "json-typo": "application/josn",
        "empty": "",
        "star": "*/*",
        "html": "text/html",
        "json-patch": "application/json-patch+json",
    }.items():
        c.event(f"ctype/{name}", lambda m: _ev(m), content_type=ctype)
    c.event("ctype/missing", lambda m: _ev(m), content_type=None)
    c.event(
        "ctype/two-headers",
        lambda m: _ev(m),
        content_type="text/plain",
        headers=[("Content-Type", "application/json")],
    )
    c.event(
        "ctype/form-encoded-body",
        lambda m: f"player_id={m}&event_type=purchase_sword",
        content_type="application/x-www-form-urlencoded",
    )
    for method in ("PUT", "PATCH", "DELETE", "GET"):
        c.raw(f"method/{method.lower()}-events", request(method, EVENTS, b'{"player_id":"MARKER"}'))
    c.raw(
        "method/post-legacy",
        request("POST", "/buy_a_sword?sword_type=MARKER", b'{"player_id":"MARKER"}'),
    )
    c.raw(
        "method/head-legacy", request("HEAD", "/buy_a_sword?sword_type=MARKER", content_type=None)
    )
    c.raw("method/options-trace", request("TRACE", EVENTS, content_type=None))
    c.raw("method/unknown-verb", request("FROB", EVENTS, b'{"player_id":"MARKER"}'))


def _http_level(c: _Corpus) -> None:
    body = b'{"event_type":"purchase_sword","player_id":"MARKER","properties":{"sword_type":"a"}}'
    n = str(len(body)).encode()
    head = b"POST /v1/events HTTP/1.1\r\nHost: chaos.t5.test\r\nConnection: close\r\n"
    typed = head + b"Content-Type: application/json\r\n"
    raws = {
        "bare-cr-in-header": typed + b"X-A: a\rSet-Cookie: x=1\r\nContent-Length: " + n,
        "bare-lf-header-split": typed + b"X-A: a\nSet-Cookie: x=1\r\nContent-Length: " + n,
        "crlf-in-request-line": b"POST /v1/events?x=1\r\nSet-Cookie: a=b HTTP/1.1\r\n"
        b"Host: h\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + n,
        "space-in-header-name": typed + b"X Injected: 1\r\nContent-Length: " + n,
        "header-without-colon": typed + b"Injected\r\nContent-Length: " + n,
        "nul-in-header-value": typed + b"X-A: a\x00b\r\nContent-Length: " + n,
        "nul-in-header-name": typed + b"X-\x00A: b\r\nContent-Length: " + n,
        "obs-fold": typed + b"X-A: a\r\n  folded: 1\r\nContent-Length: " + n,
        "space-before-colon": typed + b"Content-Length : " + n,
        "cl-and-te": typed + b"Content-Length: " + n + b"\r\nTransfer-Encoding: chunked",
        "two-different-cl": typed + b"Content-Length: " + n + b"\r\nContent-Length: 5",
        "negative-cl": typed + b"Content-Length: -1",
        "non-numeric-cl": typed + b"Content-Length: 12abc",
        "cl-with-plus": typed + b"Content-Length: +" + n,
        "te-gzip": typed + b"Transfer-Encoding: gzip",
        "te-chunked-identity": typed + b"Transfer-Encoding: chunked, identity",
        "http-2-version": b"POST /v1/events HTTP/2.0\r\nHost: h\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + n,
        "http-9-version": b"POST /v1/events HTTP/9.9\r\nHost: h\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + n,
        "lowercase-version": b"POST /v1/events http/1.1\r\nHost: h\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + n,
        "nul-in-path": b"POST /v1/events\x00x HTTP/1.1\r\nHost: h\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + n,
        "absolute-uri-other-host": b"POST http://evil.example/v1/events HTTP/1.1\r\nHost: h\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + n,
        "tab-separated-request-line": b"POST\t/v1/events\tHTTP/1.1\r\nHost: h\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + n,
        "non-ascii-header-name": typed + "X-\u00e9: 1\r\nContent-Length: ".encode("latin-1") + n,
    }
    for name, raw_head in raws.items():
        c.raw(f"http/{name}", raw_head + b"\r\n\r\n" + body)
    # Not here: an unknown transfer coding ("xchunked"), which gunicorn answers 501 before
    # the app is called, as RFC 9112 section 6.1 asks.
    # a chunked body that lies about its chunk sizes, or is not hex
    chunked = typed + b"Transfer-Encoding: chunked\r\n\r\n"
    c.raw("http/chunk-size-not-hex", chunked + b"zz\r\n" + body + b"\r\n0\r\n\r\n")
    c.raw("http/chunk-size-too-small", chunked + b"5\r\n" + body + b"\r\n0\r\n\r\n")
    c.raw("http/chunk-size-overflow", chunked + b"ffffffffffffffffffff\r\n" + body)
    # Content-Length shorter than the body: the rest is read as a (broken) next request
    c.raw("http/cl-shorter-than-body", typed + b"Content-Length: 20\r\n\r\n" + body)
    # path tricks towards the events route
    for name, target in {
        "dot-segments": "/v1/../v1/events",
        "double-slash": "//v1//events",
        "encoded-slash": "/v1%2fevents",
        "trailing-dot": "/v1/events/.",
        "backslash": "/v1\\events",
    }.items():
        c.raw(f"path/{name}", request("POST", target, body))


def _timestamps(c: _Corpus) -> None:
    now = datetime.now(UTC)
    forged = {
        "year-9999": "9999-12-31T23:59:59Z",
        "year-2100": "2100-01-01T00:00:00Z",
        "plus-2-days": _iso(now + timedelta(days=2)),
        "plus-30-days": _iso(now + timedelta(days=30)),
        "far-future-offset": "9999-12-31T23:59:59+14:00",
        "epoch-zero": "1970-01-01T00:00:00Z",
        "year-1": "0001-01-01T00:00:00Z",
        "year-1900": "1900-01-01T00:00:00Z",
        "year-2000-reset-clock": "2000-01-01T00:00:00Z",
        "minus-6-years": _iso(now - timedelta(days=6 * 366)),
        "leap-second-1998": "1998-12-31T23:59:60Z",
        "year-1-minus-offset": "0001-01-01T00:00:00-14:00",
        "feb-30": "2026-02-30T00:00:00Z",
        "month-13": "2026-13-01T00:00:00Z",
        "hour-25": "2026-01-01T25:00:00Z",
        "no-offset": "2026-01-01T00:00:00",
        "date-only": "2026-01-01",
        "epoch-seconds-string": "1767225600",
        "year-10000": "+10000-01-01T00:00:00Z",
        "negative-year": "-0001-01-01T00:00:00Z",
        "garbage": "yesterday",
        "empty": "",
    }
    for name, value in forged.items():
        c.event(f"time/{name}", lambda m, v=value: _ev(m, event_time=v))
    c.event("time/epoch-seconds-number", lambda m: _ev(m, event_time=1767225600))
    c.event("time/null", lambda m: _ev(m, event_time=None))
    c.event(
        "time/far-future-in-batch", lambda m: [_ev(m), _ev(m, event_time="9999-01-01T00:00:00Z")]
    )
    c.event(
        "time/received-at-forged-then-future",
        lambda m: _ev(m, received_at="2000-01-01T00:00:00Z", event_time="2999-01-01T00:00:00Z"),
    )


def _schema(c: _Corpus) -> None:
    for name, version in {
        "0": 0,
        "2": 2,
        "999": 999,
        "minus-1": -1,
        "string-1": "1",
        "float-1.5": 1.5,
        "null": None,
        "true": True,
        "huge": 10**30,
        "list": [1],
        "object": {"v": 1},
    }.items():
        c.event(f"version/{name}", lambda m, v=version: _ev(m, schema_version=v))
    variants = {
        "unknown-type": {"event_type": "delete_all_players"},
        "type-path-traversal": {"event_type": "../../etc/passwd"},
        "type-uppercase": {"event_type": "PURCHASE_SWORD"},
        "type-sql": {"event_type": "purchase_sword'; DROP TABLE x;--"},
        "type-null": {"event_type": None},
        "type-number": {"event_type": 7},
        "unknown-top-field": {"admin": True},
        "player-empty": {"player_id": ""},
        "player-number": {"player_id": 12345},
        "player-object": {"player_id": {"$ne": None}},
        "event-id-not-uuid": {"event_id": "../../x"},
        "event-id-number": {"event_id": 1},
        "properties-array": {"properties": ["sword_type"]},
        "properties-null": {"properties": None},
        "properties-missing-required": {"properties": {"price": 1}},
        "properties-unknown": {"properties": {"sword_type": "a", "is_admin": True}},
        "currency-lowercase": {"properties": {"sword_type": "a", "currency": "usd"}},
        "sword-empty": {"properties": {"sword_type": ""}},
        "quantity-too-big": {"properties": {"sword_type": "a", "quantity": 10**7}},
        "prototype-pollution": {"__proto__": {"admin": True}},
        "session-empty": {"session_id": ""},
    }
    for name, changes in variants.items():
        c.event(f"schema/{name}", lambda m, ch=changes: _ev(m, **ch))
    c.event(
        "schema/event-type-missing",
        lambda m: {k: v for k, v in _ev(m).items() if k != "event_type"},
    )
    c.event(
        "schema/no-player-no-host",
        lambda m: {k: v for k, v in _ev(m).items() if k != "player_id"},
        host="",
    )
    c.event(
        "schema/guild-role-invalid",
        lambda m: _ev(m, event_type="join_guild", properties={"guild_id": "g", "role": "god"}),
    )


def _batches(c: _Corpus) -> None:
    c.event("batch/501-events", lambda m: [_ev(m) for _ in range(501)])
    c.event("batch/10000-tiny", lambda m: [{"player_id": m}] * 10_000)
    c.event(
        "batch/ndjson-501-lines",
        lambda m: "\n".join([_evtext(m)] * 501),
        content_type="application/x-ndjson",
    )
    c.event(
        "batch/one-invalid-of-100",
        lambda m: [_ev(m) for _ in range(99)] + [_ev(m, event_type="nope")],
    )
    c.event("batch/one-non-object-of-50", lambda m: [_ev(m) for _ in range(49)] + [m])
    c.event(
        "batch/500-valid-plus-one-dup-key",
        lambda m: "[" + ",".join([_evtext(m)] * 499) + "," + _evtext(m)[:-1] + ',"player_id":"x"}]',
    )


def _slow(c: _Corpus) -> None:
    """Slow bodies (slowloris): each must be cut off and answered 4xx, not hold a thread."""

    def body_for(marker: str) -> bytes:
        return _dumps(_ev(marker))

    for index in range(3):
        marker = c.marker()
        body = body_for(marker)
        c.cases.append(
            HttpCase(f"slow/trickle-{index}", request("POST", EVENTS, body), marker, trickle_s=2.0)
        )
    marker = c.marker()
    body = body_for(marker)
    c.cases.append(
        HttpCase(
            "slow/cl-longer-than-body-stalled",
            request("POST", EVENTS, body, length=len(body) * 2),
            marker,
            stall=True,
        )
    )
    marker = c.marker()
    body = body_for(marker)
    c.cases.append(
        HttpCase("slow/half-body-stalled", request("POST", EVENTS, body), marker, stall=True)
    )
    marker = c.marker()
    body = body_for(marker)
    chunked = request("POST", EVENTS, b"", length="", headers=[("Transfer-Encoding", "chunked")])
    chunks = (
        b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 8]), body[i : i + 8])
            for i in range(0, len(body), 8)
        )
        + b"0\r\n\r\n"
    )
    c.cases.append(HttpCase("slow/chunked-trickle", chunked + chunks, marker, trickle_s=2.0))


# ------------------------------------------------------------------ seeded mutations


def mutations(token: str, rng: random.Random, count: int, offset: int = 100_000) -> list[HttpCase]:
    """``count`` invalid requests made from valid ones by one seeded mutation each, every
    mutation chosen so the result cannot be valid."""
    out = []
    for index in range(count):
        marker = f"{token}-{offset + index}"
        name, body, ctype = _mutate(rng, marker)
        out.append(
            HttpCase(f"mutation/{name}", request("POST", EVENTS, body, content_type=ctype), marker)
        )
    return out


def _mutate(rng: random.Random, marker: str) -> tuple[str, bytes, str]:
    events = [valid_event(marker) for _ in range(rng.choice((1, 1, 2, 5, 20)))]
    text = _dumps(events if len(events) > 1 or rng.random() < 0.5 else events[0])
    kind = rng.choice(
        (
            "truncate",
            "bad-byte",
            "dup-key",
            "control",
            "time",
            "version",
            "nest",
            "number",
            "ctype",
            "unknown-field",
            "surrogate",
            "oversize",
        )
    )
    ctype = "application/json"
    if kind == "truncate":
        text = text[: rng.randrange(1, len(text))]
    elif kind == "bad-byte":
        at = rng.randrange(len(text))
        text = (
            text[:at]
            + rng.choice((b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b"\xc3"))
            + text[at:]
        )
    elif kind == "dup-key":
        key = rng.choice((b'"player_id":', b'"event_type":', b'"sword_type":', b'"price":'))
        at = text.index(key)
        end = text.index(b",", at) if b"," in text[at:] else len(text) - 1
        text = text[:end] + b"," + text[at:end] + text[end:]
    elif kind == "control":
        char = rng.choice(("\\u0000", "\\r\\n", "\\n", "\\t", "\\u001b", "\\u0007"))
        text = text.replace(b"katana", f"kat{char}ana".encode(), 1)
    elif kind == "time":
        year = rng.choice((1, 1000, 1970, 1999, 2101, 3000, 9999))
        event = valid_event(marker, event_time=f"{year:04d}-{rng.randint(1, 12):02d}-01T00:00:00Z")
        text = _dumps(event)
    elif kind == "version":
        text = _dumps(valid_event(marker, schema_version=rng.choice((0, 2, 3, 99, -1, "1"))))
    elif kind == "nest":
        depth = rng.randint(1_100, 60_000)
        text = b"[" * depth + text + b"]" * depth
    elif kind == "number":
        literal = rng.choice((b"NaN", b"Infinity", b"-Infinity", b"1e309", b"-1e999"))
        text = text.replace(b"4.99", literal, 1)
    elif kind == "ctype":
        ctype = rng.choice(
            (
                "text/plain",
                "application/xml",
                "",
                "application/x-json",
                "multipart/form-data",
                "application/octet-stream",
            )
        )
    elif kind == "unknown-field":
        text = text.replace(b'"player_id"', b'"x_%d":1,"player_id"' % rng.randrange(10**6), 1)
    elif kind == "surrogate":
        text = text.replace(b"katana", rng.choice((b"\\ud800", b"\\udfff", b"a\\udc00b")), 1)
    elif kind == "oversize":
        text = b"[" + b",".join([_dumps(valid_event(marker))] * rng.randint(501, 700)) + b"]"
    return kind, text, ctype


# ------------------------------------------------------------------ the SQL corpus (T8)


@dataclass(frozen=True)
class SqlCase:
    name: str
    sql: str
    runaway: bool = False  # must be stopped by the time limit (408) or the memory limit


def sql_cases(home: str, lake: str, scratch: str) -> list[SqlCase]:
    """Escape attempts against the sandbox's DuckDB: ``home`` (the fake HOME, holding
    canaries), ``lake`` (the lake folder), ``scratch`` (where writes would land)."""
    passwd, canary = "/etc/passwd", f"{home}/canary.txt"
    table_file = f"{lake}/tables/purchase_sword"
    reads = {
        "read_csv-passwd": f"SELECT * FROM read_csv('{passwd}')",
        "read_csv_auto-passwd": f"SELECT * FROM read_csv_auto('{passwd}', header=false)",
        "read_text-passwd": f"SELECT content FROM read_text('{passwd}')",
        "read_blob-canary": f"SELECT content FROM read_blob('{canary}')",
        "read_text-home-tilde": "SELECT content FROM read_text('~/canary.txt')",
        "read_text-glob-home": f"SELECT content FROM read_text('{home}/*')",
        "read_json-canary": f"SELECT * FROM read_json_auto('{canary}')",
        "read_parquet-lake-glob": f"SELECT count(*) FROM read_parquet('{table_file}/**/*.parquet')",
        "read_parquet-lake-hive": f"SELECT * FROM read_parquet('{lake}/**', hive_partitioning=1)",
        "read_text-delta-log": f"SELECT content FROM read_text('{table_file}/_delta_log/*.json')",
        "glob-lake": f"SELECT * FROM glob('{lake}/**')",
        "glob-root": "SELECT * FROM glob('/*')",
        "glob-home": f"SELECT * FROM glob('{home}/*')",
        "replacement-scan-path": f"SELECT * FROM '{passwd}'",
        "replacement-scan-csv": f"SELECT * FROM '{canary}'",
        "sniff_csv": f"SELECT * FROM sniff_csv('{passwd}')",
        "parquet_metadata-lake": f"SELECT * FROM parquet_metadata('{table_file}/**/*.parquet')",
        "parquet_schema-lake": f"SELECT * FROM parquet_schema('{table_file}/**/*.parquet')",
        "delta_scan": f"SELECT * FROM delta_scan('{table_file}')",
        "read_csv-proc-environ": "SELECT * FROM read_csv('/proc/self/environ')",
        "read_text-proc-cmdline": "SELECT content FROM read_text('/proc/self/cmdline')",
        "read_csv-dev-stdin": "SELECT * FROM read_csv('/dev/stdin')",
        "httpfs-url": "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "http-csv": "SELECT * FROM read_csv('http://127.0.0.1:1/x.csv')",
        "s3-url": "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
        "file-uri": f"SELECT content FROM read_text('file://{canary}')",
        "subquery-read": f"SELECT (SELECT count(*) FROM read_text('{canary}')) AS n",
        "cte-read": f"WITH x AS (SELECT * FROM read_text('{canary}')) SELECT * FROM x",
        "query-table-function": f"SELECT * FROM query('SELECT * FROM read_text(''{canary}'')')",
        "union-read": f"SELECT 'a' AS content UNION ALL SELECT content FROM read_text('{canary}')",
    }
    writes = {
        "copy-to-scratch": f"COPY (SELECT 42 AS x) TO '{scratch}/out.csv'",
        "copy-to-home": f"COPY (SELECT 42 AS x) TO '{home}/pwned.csv'",
        "copy-over-canary": f"COPY (SELECT 'pwned' AS x) TO '{canary}' (HEADER false)",
        "copy-into-lake": f"COPY (SELECT 1 AS x) TO '{table_file}/pwned.parquet' (FORMAT parquet)",
        "copy-over-delta-log": (
            f"COPY (SELECT 1 AS x) TO '{table_file}/_delta_log/00000000000000000099.json'"
        ),
        "copy-table-to": f"COPY purchase_sword TO '{scratch}/dump.parquet' (FORMAT parquet)",
        "copy-from": f"CREATE TABLE t(line VARCHAR); COPY t FROM '{passwd}'",
        "export-database": f"EXPORT DATABASE '{scratch}/export'",
        "attach-file": f"ATTACH '{scratch}/evil.duckdb' AS evil",
        "attach-lake-file": f"ATTACH '{lake}/evil.duckdb' AS evil",
        "attach-sqlite": f"ATTACH '{home}/x.sqlite' (TYPE sqlite)",
        "install-httpfs": "INSTALL httpfs",
        "load-httpfs": "LOAD httpfs",
        "load-path": f"LOAD '{scratch}/evil.duckdb_extension'",
        "install-from-url": "INSTALL evil FROM 'http://127.0.0.1:1/'",
        "force-install": "FORCE INSTALL httpfs",
        "create-secret": "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "create-persistent-secret": "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "duckdb-secrets": "SELECT * FROM duckdb_secrets()",
        "checkpoint": "CHECKPOINT",
        "create-table-then-copy": f"CREATE TABLE t AS SELECT 1 AS x; COPY t TO '{scratch}/t.csv'",
        "create-macro-read": f"CREATE MACRO r() AS TABLE SELECT * FROM read_text('{canary}'); "
        "SELECT * FROM r()",
    }
    settings = {
        "set-external-access": "SET enable_external_access = true",
        "set-global-external-access": "SET GLOBAL enable_external_access = true",
        "reset-external-access": "RESET enable_external_access",
        "unlock-configuration": "SET lock_configuration = false",
        "pragma-memory": "PRAGMA memory_limit = '64GB'",
        "set-threads": "SET threads = 64",
        "set-home": f"SET home_directory = '{scratch}'",
        "set-temp-directory": f"SET temp_directory = '{scratch}/spill'",
        "set-allowed-directories": "SET allowed_directories = ['/']",
        "set-allowed-paths": f"SET allowed_paths = ['{passwd}']",
        "set-log-path": f"SET log_query_path = '{scratch}/log.txt'",
        "enable-logging": "CALL enable_logging()",
        "set-extension-directory": f"SET extension_directory = '{scratch}'",
        "set-community-extensions": "SET allow_community_extensions = true",
        "set-unsigned": "SET allow_unsigned_extensions = true",
        "pragma-enable-profiling": f"PRAGMA enable_profiling = 'json'; "
        f"PRAGMA profile_output = '{scratch}/p.json'",
        "set-python-replacements": "SET python_enable_replacements = true",
    }
    smuggled = {
        "stacked-copy": f"SELECT 1; COPY (SELECT 1) TO '{scratch}/stacked.csv'",
        "copy-then-select": f"COPY (SELECT 1) TO '{scratch}/first.csv'; SELECT 1",
        "stacked-set-then-read": f"SET enable_external_access = true; "
        f"SELECT * FROM read_text('{canary}')",
        "comment-hides-statement": f"SELECT 1 /* ; */ ; COPY (SELECT 1) TO '{scratch}/c.csv'",
        "line-comment-newline": f"SELECT 1 -- harmless\n; COPY (SELECT 1) TO '{scratch}/l.csv'",
        "string-with-semicolon": f"SELECT ';' AS x; COPY (SELECT 1) TO '{scratch}/s.csv'",
        "fullwidth-semicolon": f"SELECT 1\uff1b COPY (SELECT 1) TO '{scratch}/u.csv'",
        "zero-width-space": f"SELECT\u200b * FROM read_text('{canary}')",
        "nbsp-keyword": f"SELECT\u00a0* FROM read_text('{canary}')",
        "homoglyph-read": f"SELECT * FROM reаd_text('{canary}')",  # noqa: RUF001 - a Cyrillic a
        "nul-in-sql": f"SELECT 1\x00; COPY (SELECT 1) TO '{scratch}/n.csv'",
        "prepare-execute": f"PREPARE p AS SELECT * FROM read_text('{canary}'); EXECUTE p",
        "pivot-read": f"PIVOT read_text('{canary}') ON filename USING count(*)",
        "describe-read": f"DESCRIBE SELECT * FROM read_text('{canary}')",
        "summarize-read": f"SUMMARIZE SELECT * FROM read_text('{canary}')",
        "explain-analyze-copy": f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{scratch}/e.csv'",
        "getenv": "SELECT getenv('HOME') AS home",
        "current-setting-home": "SELECT current_setting('home_directory') AS h",
        "duckdb-extensions": "SELECT * FROM duckdb_extensions()",
        "use-other-db": "USE system; SELECT 1",
        "detach-memory": "DETACH memory",
        "drop-view": "DROP VIEW purchase_sword",
        "python-scope-variable": "SELECT * FROM sandbox",
        "python-scope-os": "SELECT * FROM os",
    }
    runaway = {
        "cross-join": "SELECT count(*) FROM range(1000000) a, range(1000000) b",
        "recursive-cte-union-all": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL "
        "SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "recursive-cte-union": "WITH RECURSIVE r(n) AS (SELECT 1 UNION SELECT n + 1 FROM r) "
        "SELECT max(n) FROM r",
        "huge-range-sum": "SELECT sum(x) FROM range(10000000000000) t(x)",
        "triple-cross-join": "SELECT count(*) FROM range(10000) a, range(10000) b, range(10000) c",
        "cross-join-on-table": "SELECT count(*) FROM purchase_sword a, purchase_sword b, "
        "range(100000000) c",
        "sort-huge": "SELECT x FROM range(2000000000) t(x) ORDER BY x DESC LIMIT 1",
        "distinct-huge": "SELECT count(DISTINCT x % 1000000007) FROM range(10000000000) t(x)",
        "join-explosion": "SELECT count(*) FROM range(100000) a JOIN range(100000) b "
        "ON a.range % 2 = b.range % 2",
        "generate-series-window": "SELECT max(s) FROM (SELECT sum(x) OVER (ORDER BY x ROWS "
        "BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) s "
        "FROM range(3000000000) t(x))",
    }
    cases = [SqlCase(f"read/{k}", v) for k, v in reads.items()]
    cases += [SqlCase(f"write/{k}", v) for k, v in writes.items()]
    cases += [SqlCase(f"settings/{k}", v) for k, v in settings.items()]
    cases += [SqlCase(f"smuggle/{k}", v) for k, v in smuggled.items()]
    cases += [SqlCase(f"runaway/{k}", v, runaway=True) for k, v in runaway.items()]
    return cases


# One expression that DuckDB evaluates in a single call cannot be interrupted; kept apart
# (see the T8 docstring): with these the sandbox's thread ran on for 20-100 s.
UNINTERRUPTIBLE = {
    "huge-list-in-one-value": "SELECT len(range(10000000))",
    "huge-string-in-one-value": "SELECT length(repeat('a', 1000000000))",
}


def sql_variants(cases: list[SqlCase], rng: random.Random, count: int) -> list[SqlCase]:
    """Seeded disguises of the corpus (full scale): keyword case, comments, whitespace,
    a SELECT wrapped as a subquery; what a text filter would miss, DuckDB must not."""
    out = []
    pool = [case for case in cases if not case.runaway]
    for index in range(count):
        case = rng.choice(pool)
        sql = case.sql
        kind = rng.choice(("case", "comment", "whitespace", "wrap", "prefix"))
        if kind == "case":
            word = rng.choice(("SELECT", "FROM", "COPY", "SET", "ATTACH", "INSTALL", "LOAD"))
            sql = sql.replace(word, "".join(rng.choice((ch.lower(), ch)) for ch in word))
        elif kind == "comment":
            sql = sql.replace(" ", rng.choice((" /* x */ ", "/**/", " --\n ")), 1)
        elif kind == "whitespace":
            sql = sql.replace(" ", rng.choice(("\t", "\n", "\r\n", "  \f ")))
        elif kind == "wrap" and sql.startswith("SELECT") and ";" not in sql:
            sql = f"SELECT * FROM ({sql}) AS wrapped"
        else:
            sql = (
                rng.choice(("/* hi */ ", "-- c\n", "\n\n", "("))
                + sql
                + (")" if sql.startswith("(") else "")
            )
        out.append(SqlCase(f"variant-{index}/{kind}/{case.name}", sql))
    return out


# ------------------------------------------------------------------ a small real lake


def small_lake(root, rows: int = 200, seed: int = 17) -> None:
    """Real Delta tables (every table of the query catalog, two commits each) under
    ``root``, in the catalog's own layout: what the SQL corpus and T7's fuzzing run over."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from questlog_query.catalog import catalog
    from questlog_schemas import lake as layout

    rng = random.Random(seed)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for name, spec in catalog().items():
        for part in range(2):
            columns = {}
            for column in spec.schema:
                values = []
                for i in range(rows):
                    at = base + timedelta(minutes=rng.randint(0, 60 * 24 * 3))
                    values.append(_value(column, i, at, rng))
                columns[column.name] = values
            if spec.is_event_table:
                columns["event_type"] = [name] * rows
                columns["event_date"] = [t.date() for t in columns["received_at"]]
            else:
                columns["seen_date"] = [t.date() for t in columns["seen_at"]]
            table = pa.Table.from_pydict(columns, schema=spec.schema)
            write_deltalake(
                layout.table_uri(str(root), name),
                table,
                mode="append",
                partition_by=[spec.date_column],
            )
            del part


def _value(column, index: int, at: datetime, rng: random.Random):
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind):
        return at
    if pa.types.is_date(kind):
        return at.date()
    if pa.types.is_boolean(kind):
        return rng.random() < 0.5
    if pa.types.is_integer(kind):
        return 1 if column.name == "schema_version" else rng.randint(1, 5)
    if pa.types.is_floating(kind):
        return round(rng.uniform(0.5, 50), 2)
    if column.name == "event_id":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if column.name == "currency":
        return rng.choice(("USD", "EUR"))
    return f"{column.name}-{index % 7}"
