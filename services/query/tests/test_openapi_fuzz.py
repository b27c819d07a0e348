"""schemathesis against /openapi.json: no generated request may cause a server error.

Driven through hypothesis directly: schemathesis 4.x needs jsonschema-rs 0.60 (the schemas
package pins 0.61) and its pytest plugin does not support pytest 9, so this uses 3.39.
"""

import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings

pytestmark = [
    pytest.mark.slow,
    # schemathesis 3.39 uses jsonschema APIs deprecated in jsonschema 4.18
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def test_no_server_error(app, events, gen):
    schemathesis.experimental.OPEN_API_3_1.enable()
    schema = schemathesis.from_wsgi("/openapi.json", app)
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case):
            if case.path == "/v1/sql":
                case.headers = {**(case.headers or {}), **gen.auth}
            response = case.call_wsgi()
            if response.status_code >= 500:
                failures.append(
                    (
                        case.method,
                        case.formatted_path,
                        case.query,
                        case.body,
                        response.status_code,
                        response.get_data(as_text=True)[:300],
                    )
                )

        run()
    assert failures == []
