"""T8's mechanism broken: the /v1/sql sandbox's DuckDB keeps external access enabled
(files, URLs, extensions), as a DuckDB opened with its defaults would."""


def apply(patch) -> None:
    import duckdb

    from questlog_query import engine, sandbox

    def connect(memory_limit, threads, allowed_directories=()):
        config = {k: v for k, v in engine.BASE_CONFIG.items() if k != "enable_external_access"}
        return duckdb.connect(
            ":memory:", config=dict(config, memory_limit=memory_limit, threads=threads)
        )

    patch.setattr(sandbox, "connect", connect)
