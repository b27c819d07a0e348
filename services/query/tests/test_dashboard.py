"""The dashboard's server side: the page and its files, their headers, and the 503 that
names `make setup` when the build is missing.

The served folder here is made from the page's real sources (services/query/dashboard)
plus stand-in vendor files, laid out as build.mjs lays it out, so these tests need no npm;
the browser test (test_dashboard_browser.py) runs the real build in a real browser.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from questlog_query import create_app

SOURCES = Path(__file__).resolve().parents[1] / "dashboard"
OWN = ("index.html", "dashboard.js", "dashboard.css")
VENDOR = {"chart.umd.min.js": b"window.Chart = function () {};\n", "pico.min.css": b":root{}\n"}


def build(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in OWN:
        (folder / name).write_bytes((SOURCES / name).read_bytes())
    for name, data in VENDOR.items():
        (folder / name).write_bytes(data)
    for name in (*OWN, *VENDOR):
        files[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps({"files": files, "packages": {}}))
    return folder


@pytest.fixture
def built(tmp_path: Path) -> Path:
    return build(tmp_path / "static" / "dashboard")


@pytest.fixture
def dash(lake_dir, gen, built):
    app = create_app(gen.settings(lake_dir))
    app.config["QUESTLOG_DASHBOARD_DIR"] = str(built)
    return app.test_client()


def csp_directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_root_redirects_to_the_dashboard(dash):
    response = dash.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    assert dash.get("/?refresh=5").headers["Location"] == "/dashboard?refresh=5"


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/"])
def test_page_is_served_with_a_strict_csp(dash, path):
    response = dash.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"<title>questlog dashboard</title>" in response.data
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = csp_directives(response.headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["connect-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [
        ("dashboard.js", "text/javascript"),
        ("dashboard.css", "text/css"),
        ("chart.umd.min.js", "text/javascript"),
        ("pico.min.css", "text/css"),
    ],
)
def test_files_are_served_with_their_content_type(dash, built, name, mimetype):
    response = dash.get(f"/dashboard/{name}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.data == (built / name).read_bytes()
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "name", ["manifest.json", "nope.js", "..", "%2e%2e%2fapp.py", "..%2F..%2Fapi%2Fdashboard.py"]
)
def test_only_the_built_files_are_served(dash, built, name):
    (built / "nope.js").write_text("// in the folder, not in the manifest")
    response = dash.get(f"/dashboard/{name}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert b"in the folder" not in response.data


def test_page_refers_only_to_its_own_files(dash, built):
    """Every script and stylesheet is one of the served files (no CDN, no inline code)."""
    html = dash.get("/dashboard").get_data(as_text=True)
    manifest = json.loads((built / "manifest.json").read_text())["files"]
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sorted(refs) == sorted(f"/dashboard/{n}" for n in manifest if n != "index.html")
    for ref in refs:
        assert dash.get(ref).status_code == 200, ref
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
    assert scripts
    assert all(body.strip() == "" for body in scripts), "inline script"
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\bon[a-z]+=", html), "inline event handler"


@pytest.mark.parametrize("broken", ["empty", "no index", "listed file gone", "bad manifest"])
def test_missing_build_is_a_503_naming_make_setup(lake_dir, gen, tmp_path, broken):
    folder = tmp_path / "dashboard"
    if broken != "empty":
        build(folder)
    if broken == "no index":
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["files"]["index.html"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif broken == "listed file gone":
        (folder / "dashboard.js").unlink()
    elif broken == "bad manifest":
        (folder / "manifest.json").write_text("{not json")
    app = create_app(gen.settings(lake_dir))
    app.config["QUESTLOG_DASHBOARD_DIR"] = str(folder)
    client = app.test_client()
    for path in ("/dashboard", "/dashboard/dashboard.css"):
        response = client.get(path)
        assert response.status_code == 503, path
        error = response.get_json()["error"]
        assert error["code"] == "dashboard_not_built"
        assert "make setup" in error["message"]
        assert error["details"]["assets_dir"] == str(folder)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    if broken == "listed file gone":
        assert client.get("/dashboard").get_json()["error"]["details"]["missing"] == [
            "dashboard.js"
        ]


def test_default_folder_is_the_gitignored_build_output():
    from questlog_query.api import dashboard

    package = Path(dashboard.__file__).resolve().parents[1]
    assert dashboard.BUILT == package / "static" / "dashboard"
    ignored = (package.parents[2] / ".gitignore").read_text().splitlines()
    assert "services/query/questlog_query/static/" in ignored


def test_the_page_never_holds_the_read_token(dash, gen, built):
    served = b"".join(
        dash.get(p).data for p in ("/dashboard", *(f"/dashboard/{n}" for n in (*OWN[1:], *VENDOR)))
    )
    assert gen.token.encode() not in served
    script = (SOURCES / "dashboard.js").read_text()
    assert "Authorization" not in script
    assert "token" not in script.lower()


def test_the_script_calls_only_public_rest_gets_and_never_renders_html():
    script = (SOURCES / "dashboard.js").read_text()
    # the paths it fetches: string or template literals starting with /v1/
    paths = re.findall(r"[`\"](/v1/[^`\"?]*)", script)
    assert paths, "no API path found in dashboard.js"
    assert all(not p.startswith("/v1/sql") for p in paths), paths
    assert "method:" not in script  # fetch defaults to GET
    assert "POST" not in script
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in script, sink
    assert re.search(r"https?://", script) is None, "a URL to another origin"
