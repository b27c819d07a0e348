"""The report, built by main() against the real query service over a known lake, shows
the known numbers; an unreachable service or an endpoint error is one clear line."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape
from pathlib import Path

import pytest

from questlog_report.__main__ import main, parse_args, read_token

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def md_table(markdown: str, title: str) -> list[dict[str, str]]:
    """The rows of the Markdown table under ``**title**`` as dicts of cell text."""
    lines = markdown.splitlines()
    start = lines.index(f"**{title}**")
    header = [c.strip() for c in lines[start + 2].strip("|").split("|")]
    rows = []
    for line in lines[start + 4 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


@pytest.fixture(scope="module")
def built(service, tmp_path_factory) -> tuple[Path, str, str, str]:
    out = tmp_path_factory.mktemp("reports")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--base-url", service.url, "--out", str(out)])
    assert code == 0, err.getvalue()
    (folder,) = out.iterdir()
    md = (folder / "report.md").read_text(encoding="utf-8")
    html = (folder / "report.html").read_text(encoding="utf-8")
    return folder, md, html, err.getvalue()


def test_purchases_per_host_and_player(built, service):
    _, md, html, _ = built
    by_host = {r["host"]: int(r["count"]) for r in md_table(md, "Purchases by host")}
    assert (
        by_host
        == service.known.purchases_by_host
        == {"user1.comcast.com": 5, "user2.att.com": 4, "user3.example.org": 2}
    )
    by_player = {
        r["player_id"]: int(r["count"]) for r in md_table(md, "Purchases by player (top 20)")
    }
    assert by_player == service.known.purchases_by_player
    assert '<td>user2.att.com</td><td class="n">4</td>' in html


def test_revenue_per_sword_type_is_exact(built, service):
    _, md, html, _ = built
    rows = md_table(md, "Revenue by sword type")
    got = {(r["sword_type"], r["currency"]): r["revenue"] for r in rows if r["revenue"] != "(none)"}
    assert {k: Decimal(v) for k, v in got.items()} == service.known.revenue_by_sword
    # exact decimal text, as the API sent it: no float artefacts like 49.949999999
    assert got[("katana", "USD")] == "44.95"
    assert got[("longsword", "USD")] == "79.96"
    assert got[("dagger", "USD")] == "5.94"
    assert got[("katana", "JPY")] == "1500"
    for text in got.values():
        assert f'<td class="n">{text}</td>' in html
    # the purchase without price or currency is counted, with no revenue
    assert {
        "sword_type": "katana",
        "currency": "(none)",
        "purchases": "1",
        "swords": "1",
        "revenue": "(none)",
    } in rows


def test_revenue_over_time_per_day(built, service):
    _, md, _, _ = built
    rows = md_table(md, "Revenue per day")
    got = {
        (r["day"], c.removeprefix("revenue ")): Decimal(v)
        for r in rows
        for c, v in r.items()
        if c.startswith("revenue ") and v != "0"
    }
    assert got == service.known.revenue_by_day
    assert {r["day"]: r["purchases"] for r in rows} == {"2026-11-01": "6", "2026-11-02": "5"}


def test_guild_members_and_no_leave_type_is_said(built, service):
    _, md, html, _ = built
    rows = md_table(md, "Members per guild")
    assert {r["guild_id"]: int(r["members"]) for r in rows} == service.known.members
    assert {r["guild_id"]: int(r["joins"]) for r in rows} == service.known.joins
    assert {r["guild_id"]: r["guild_name"] for r in rows} == {
        "g-dragons": "Dragons",
        "g-wolves": "Wolves",
    }
    assert "no leave event type" in md
    assert "no leave event type" in html


def test_activity_dau_and_events_per_minute(built, service):
    _, md, _, _ = built
    dau = {r["event_date"]: int(r["dau"]) for r in md_table(md, "Daily active players")}
    assert dau == service.known.dau
    per_minute = md_table(md, "Events per minute")
    # the default window is the hour ending with the newest event (day 2, 15:42 UTC)
    assert sum(int(r["join_guild"]) + int(r["purchase_sword"]) for r in per_minute) == 8
    assert per_minute[-1]["minute"].startswith("2026-11-02T15:42")


def test_data_quality_and_freshness(built, service):
    _, md, html, _ = built
    quarantine = {
        r["reason"]: int(r["count"]) for r in md_table(md, "Quarantined events by reason")
    }
    assert quarantine == service.known.quarantine
    assert "<td>schema_violation: price</td>" in html
    counters = {
        r["counter"]: r["since the extractor started"]
        for r in md_table(md, "Extractor counters (since the extractor started)")
    }
    assert counters["duplicates removed (same event_id)"] == "6"
    assert counters["late events dropped (behind the watermark)"] == "1"
    assert {
        r["reason"]: r["events"]
        for r in md_table(md, "Events the API refused (since the API started)")
    } == {"invalid_event": "3"}
    tables = {r["name"]: r for r in md_table(md, "Tables")}
    assert tables["purchase_sword"]["rows"] == "11"
    assert tables["purchase_sword"]["version"] == "1"
    assert Decimal(tables["quarantine"]["freshness_seconds"]) > 0
    lag = {
        r["measure"]: r["value"]
        for r in md_table(
            md,
            next(line.strip("*") for line in md.splitlines() if line.startswith("**Extractor lag")),
        )
    }
    assert lag["offsets behind latest (records not yet read)"] == "42"
    assert lag["last micro-batch id"] == "17"


def test_pipeline_diagram_comes_from_the_services_settings(built, service):
    folder, md, _, _ = built
    settings = {r["setting"]: r["value"] for r in md_table(md, "Settings")}
    assert settings["extractor topic"] == "events"
    assert settings["extractor trigger_seconds"] == "1"
    assert settings["lake root"] == service.lake.as_uri()
    assert settings["lake tables"] == "join_guild, level_up, purchase_sword, quarantine"
    assert settings["query service"] == service.url
    text = md.split("```text\n", 1)[1].split("```", 1)[0]
    assert "topic: events" in text
    assert "bootstrap: 127.0.0.1:9092" in text
    assert f"root: {service.lake.as_uri()}" in text
    assert service.url in text
    assert "22 accepted" in text
    assert "27 rows read" in text
    assert (folder / "pipeline.png").stat().st_size > 10_000


def test_files_sections_calls_and_as_of(built, service):
    folder, md, html, progress = built
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == sorted(
        [
            "pipeline.png",
            "purchases_by_host.png",
            "purchases_by_player.png",
            "revenue_by_sword_type.png",
            "revenue_over_time.png",
            "guild_members.png",
            "dau.png",
            "events_per_minute.png",
            "quarantine_by_reason.png",
            "freshness.png",
        ]
    )
    for name in pngs:
        assert (folder / name).read_bytes().startswith(PNG_MAGIC)
        assert f"]({name})" in md
    assert html.count('src="data:image/png;base64,iVBORw0KGgo') == len(pngs)
    # self-contained: the only http(s) text is the query service's URL
    assert set(re.findall(r"https?://[^\s\"'<>)]*", html)) == {service.url}
    assert "<link" not in html
    assert "<script" not in html
    sections = md.split("\n## ")[1:]
    assert len(sections) == 8
    for section in sections:
        assert re.search(r"API calls: `GET /v1/[a-z/-]+", section), section[:80]
    for call in (
        "GET /v1/pipeline",
        "GET /v1/stats/counts?event_type=purchase_sword&group_by=host",
        "GET /v1/kpis/revenue?by=sword_type",
        "GET /v1/kpis/guilds",
        "GET /v1/kpis/dau",
        "GET /v1/stats/counts?event_type=quarantine&group_by=reason",
        "GET /v1/tables",
        "GET /v1/kpis/events-per-minute?since=2026-11-02T14:43:00Z",
        "GET /v1/stats/counts?event_type=purchase_sword&group_by=sword_type,price,currency",
    ):
        assert call in md
        assert call in unescape(html)
    # every figure names the table versions it was drawn from
    assert "as_of: purchase_sword v1" in md
    assert "as_of: join_guild v0" in md
    assert "as_of: quarantine v0" in md
    assert "as_of: 20" in md
    assert md.count("as_of: ") >= len(pngs)
    # one progress line per section, with elapsed time
    assert len(re.findall(r"^\[report\] \d/8 .*\d+\.\d\d s", progress, re.M)) == 8


def test_unreachable_service_is_one_line_and_exit_2(free_port_url, tmp_path, capsys):
    code = main(["--base-url", free_port_url, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert free_port_url in err
    assert "unreachable" in err
    assert list(tmp_path.iterdir()) == []


def test_endpoint_error_shows_the_api_message(service, tmp_path, capsys):
    code = main(["--base-url", service.url, "--out", str(tmp_path), "--since", "1900-01-01"])
    err = capsys.readouterr().err
    assert code == 1
    assert "answered 400" in err
    assert "since must be from 1970-01-01" in err
    assert list(tmp_path.iterdir()) == []


def test_a_window_longer_than_a_week_still_builds(service, tmp_path, capsys):
    code = main(
        [
            "--base-url",
            service.url,
            "--out",
            str(tmp_path),
            "--since",
            "2026-10-01T00:00:00Z",
            "--until",
            "2026-11-02T00:00:00Z",
        ]
    )
    assert code == 0, capsys.readouterr().err
    md = next(tmp_path.rglob("report.md")).read_text()
    # day 1 only: 6 purchases by 3 hosts; the minute chart shows the window's last hour
    assert sum(int(r["count"]) for r in md_table(md, "Purchases by host")) == 6
    assert {r["day"] for r in md_table(md, "Revenue per day")} == {"2026-11-01"}
    assert (
        "GET /v1/kpis/events-per-minute?since=2026-11-01T23:00:00Z&until=2026-11-02T00:00:00Z" in md
    )


def test_token_is_sent_on_every_request(service, tmp_path, capsys, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    monkeypatch.setenv("QUESTLOG_REPORT_OUT", str(tmp_path / "out"))
    before = len(service.authorization)
    code = main(["--base-url", service.url, "--token-file", str(token_file)])
    assert code == 0, capsys.readouterr().err
    sent = service.authorization[before:]
    assert len(sent) >= 10
    assert set(sent) == {"Bearer s3cret"}
    assert "s3cret" not in "".join(p.read_text() for p in (tmp_path / "out").rglob("report.*"))


def test_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("QUESTLOG_REPORT_TOKEN", "from-env")
    assert read_token(parse_args([])) == "from-env"
    monkeypatch.delenv("QUESTLOG_REPORT_TOKEN")
    assert read_token(parse_args([])) is None


def test_base_url_from_the_environment(free_port_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QUESTLOG_REPORT_BASE_URL", free_port_url)
    assert main(["--out", str(tmp_path)]) == 2
    assert free_port_url in capsys.readouterr().err


def test_bad_options_exit_2(tmp_path, capsys):
    assert main(["--base-url", "ftp://x", "--out", str(tmp_path)]) == 2
    assert "--base-url must be an http(s):// URL" in capsys.readouterr().err
    assert main(["--token-file", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "cannot read --token-file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--since", "yesterday"])
    assert exc.value.code == 2
