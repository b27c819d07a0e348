"""notebooks/explore.ipynb runs headless (nbclient, a real ipykernel) against the real query
service and the known Delta lake, and shows the known numbers both ways."""

from __future__ import annotations

import runpy
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# the known rows, by path (importlib mode cannot import conftest as a module)
PURCHASES = runpy.run_path(str(Path(__file__).with_name("conftest.py")))["PURCHASES"]
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == []
        assert cell.execution_count is None


@pytest.mark.slow  # a real ipykernel: ~15 s here
def test_notebook_shows_the_known_numbers(service, monkeypatch):
    monkeypatch.setenv("QUESTLOG_QUERY_URL", service.url)
    monkeypatch.setenv("QUESTLOG_LAKE_ROOT", service.lake.as_uri())
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert [out for out in outputs if out.output_type == "error"] == []
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert f"query service: {service.url}" in text
    for host, count in service.known.purchases_by_host.items():
        assert f"api purchases by host: {host} {count}\n" in text
        assert f"lake purchases by host: {host} {count}\n" in text
    for guild, members in service.known.members.items():
        joins = service.known.joins[guild]
        assert f"api guild: {guild} joins {joins} members {members}\n" in text
        assert f"lake guild: {guild} members {members}\n" in text
    assert f"purchases: {sum(service.known.purchases_by_host.values())}\n" in text
    assert "the query service and the Delta tables agree: 11 purchases, 2 guilds" in text
    # describe() of user1's 5 purchases, twice (API, lake): the count row counts the
    # non-null prices and quantities
    user1 = [row for row in PURCHASES if row[0] == "user1.comcast.com"]
    counts = [float(sum(row[i] is not None for row in user1)) for i in (3, 4)]
    assert counts == [5, 4]
    mean_price = sum(row[3] for row in user1) / len(user1)
    frames = [
        out["data"]["text/plain"]
        for out in outputs
        if out.output_type == "execute_result" and "text/plain" in out.get("data", {})
    ]
    described = [f for f in frames if f.lstrip().startswith("price") and "count" in f]
    assert len(described) == 2, frames
    for frame in described:
        rows = {
            line.split()[0]: [float(v) for v in line.split()[1:]] for line in frame.splitlines()[1:]
        }
        assert rows["count"] == counts, frame
        assert abs(rows["mean"][0] - mean_price) < 1e-6, frame
