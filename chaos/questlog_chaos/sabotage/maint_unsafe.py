"""T11: VACUUM goes behind Delta's back with a stale view of the table.

Instead of deleting only the files committed versions removed (tombstones), it deletes
every Parquet file on disk that the version *before the compaction* does not list: the
files OPTIMIZE just wrote, and the stream's appends since, which the current version
lists. Rows vanish from the current snapshot and readers hit missing files.
"""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_extractor import maintain

    def stale_vacuum(uri: str, retain_hours: int | None) -> list[str]:
        from pathlib import Path
        from urllib.parse import unquote, urlparse

        import deltalake

        table = deltalake.DeltaTable(uri)
        history = table.history()  # newest first
        optimized = [h["version"] for h in history if h.get("operation") == "OPTIMIZE"]
        stale = deltalake.DeltaTable(
            uri, version=(optimized[0] - 1) if optimized else table.version()
        )
        keep = {unquote(urlparse(u).path) for u in stale.file_uris()}
        root = Path(unquote(urlparse(uri).path))
        gone = [
            str(p)
            for p in root.rglob("*.parquet")
            if "_delta_log" not in p.parts and str(p) not in keep
        ]
        for path in gone:
            Path(path).unlink(missing_ok=True)
        return gone

    patch.setattr(maintain, "vacuum_removed", stale_vacuum)
