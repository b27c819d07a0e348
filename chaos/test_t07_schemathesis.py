"""T7: schemathesis against both services' OpenAPI specs, with a fixed seed: no server
error, and no answer that breaks the schema its spec declares for it.

Each service runs in this process (the API on its memory sink, the query service over a
real small Delta lake), driven through WSGI: the same apps, routes and error handlers
that gunicorn serves. Every operation gets ``max_examples`` generated cases (1,000 at full
scale, 15 in ``make test``, where the services' own tests/test_openapi_fuzz.py already run
30-40 per operation); an operation with few possible inputs (none at all, for /healthz)
stops when hypothesis has tried them all. Beyond those tests, this one checks every
answer against the schema its spec declares and reports the counts.

schemathesis 3.39 driven through hypothesis directly (see the services' fuzz tests for
why not 4.x or its pytest plugin).
"""

from __future__ import annotations

import collections
import time
import warnings

import pytest

from questlog_chaos.report import Result

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, seed, settings

pytestmark = [
    pytest.mark.slow,
    # schemathesis 3.39 uses jsonschema APIs deprecated in jsonschema 4.18
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

TOKEN = "t7-read-token"


def _hypothesis_test(strategy, check, max_examples: int, rng_seed: int):
    """``check`` run on ``max_examples`` cases drawn from ``strategy`` with a fixed seed;
    no shrinking: a failing case is recorded, not raised."""

    @seed(rng_seed)
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        check(case)

    return run


def _fuzz(app, service: str, max_examples: int, rng_seed: int, headers_for=None):
    """Cases run per operation, server errors, and schema violations."""
    from schemathesis.checks import not_a_server_error, response_schema_conformance
    from schemathesis.exceptions import CheckFailed

    schemathesis.experimental.OPEN_API_3_1.enable()
    schema = schemathesis.from_wsgi("/openapi.json", app)
    counts: dict[str, int] = {}
    server_errors: list[str] = []
    violations: list[str] = []
    for operation in [result.ok() for result in schema.get_all_operations()]:
        label = f"{service} {operation.method.upper()} {operation.path}"
        counts[label] = 0

        def check(case, label=label):
            counts[label] += 1
            if headers_for is not None:
                case.headers = {**(case.headers or {}), **headers_for(case)}
            response = case.call_wsgi()
            if response.status_code >= 500:
                server_errors.append(
                    f"{label} -> {response.status_code}: {response.get_data(as_text=True)[:200]}"
                )
                return
            try:
                case.validate_response(
                    response, checks=(not_a_server_error, response_schema_conformance)
                )
            except CheckFailed as exc:
                violations.append(f"{label} -> {response.status_code}: {str(exc)[:300]}")

        _hypothesis_test(operation.as_strategy(), check, max_examples, rng_seed)()
    return counts, server_errors, violations


@pytest.mark.sabotage("query_500")
def test_both_openapi_specs_hold_under_generated_requests(scale, record, sabotaged, tmp_path):
    from questlog_api import MemorySink, Settings, create_app
    from questlog_chaos.corpus import small_lake
    from questlog_query import create_app as create_query_app
    from questlog_query.settings import Settings as QuerySettings

    examples = scale.pick(15, 1000)  # make test also runs the services' own fuzz tests
    lake = tmp_path / "lake"
    small_lake(lake, rows=50, seed=scale.seed)
    api = create_app(
        Settings(sink="memory", ip_hash_key=b"t7-ip-hash-key-0123456789"), sink=MemorySink()
    )
    query = create_query_app(
        QuerySettings(
            lake_root=lake.as_uri(),
            read_token=TOKEN,
            snapshot_ttl_s=0.0,
            sql_timeout_s=2.0,
            duckdb_threads=1,
            duckdb_memory_limit="256MB",
        )
    )

    started = time.monotonic()
    counts, errors, violations = _fuzz(api, "api", examples, scale.seed)
    query_counts, query_errors, query_violations = _fuzz(
        query,
        "query",
        examples,
        scale.seed,
        headers_for=lambda case: (
            {"Authorization": f"Bearer {TOKEN}"} if case.path == "/v1/sql" else {}
        ),
    )
    seconds = time.monotonic() - started
    counts.update(query_counts)
    errors += query_errors
    violations += query_violations

    full = {label: n for label, n in counts.items() if n >= examples}
    short = {label: n for label, n in counts.items() if n < examples}
    per_service = collections.Counter(label.split(" ", 1)[0] for label in counts)
    result = Result(
        "T7",
        "schemathesis on both OpenAPI specs",
        load=f"seed {scale.seed}, {examples} cases per operation",
        inputs=f"{sum(counts.values())} generated requests over {len(counts)} operations "
        f"(api {per_service['api']}, query {per_service['query']})",
        errors_5xx=len(errors),
        figures={
            "operations x cases": f"{len(full)} x >={examples}"
            + (
                f" + {len(short)} with every input tried "
                f"({', '.join(f'{k} {v}' for k, v in short.items())})"
                if short
                else ""
            ),
            "schema violations": str(len(violations)),
            "wall": f"{seconds:.0f} s",
        },
    )
    result.check(not errors, f"{len(errors)} server errors, e.g. {errors[:3]}")
    result.check(
        not violations, f"{len(violations)} answers break their schema, e.g. {violations[:3]}"
    )
    result.check(
        per_service["api"] >= 5 and per_service["query"] >= 10,
        f"too few operations in the specs: {dict(per_service)}",
    )
    # an operation stops short only when hypothesis ran out of distinct inputs (an
    # operation without parameters or body has one); a parameterised one never should
    result.check(
        len(full) >= len(counts) // 2 and all(n >= 1 for n in short.values()),
        f"operations called fewer than {examples} times: {short}",
    )
    record(result)
