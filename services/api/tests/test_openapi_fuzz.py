"""schemathesis against /openapi.json, in-process on the memory sink: no generated request
may cause a server error, and every 2xx on an event route really produced something.

schemathesis 3.39 driven through hypothesis directly (4.x needs jsonschema-rs 0.60 while
the schemas package pins 0.61, and its pytest plugin does not support pytest 9).
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


def test_no_server_error(app, sink):
    schemathesis.experimental.OPEN_API_3_1.enable()
    schema = schemathesis.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    failures = []
    statuses: dict[str, set[int]] = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case):
            before = len(sink.records)
            response = case.call_wsgi()
            statuses.setdefault(case.path, set()).add(response.status_code)
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
            if case.path == "/v1/events" and response.status_code == 202:
                accepted = response.get_json()["accepted"]
                if len(sink.records) - before != accepted:
                    failures.append(("202 without produce", case.body))
            if (
                200 <= response.status_code < 300
                and case.path != "/v1/events"
                and case.path.startswith(("/purchase", "/buy", "/join"))
                and len(sink.records) != before + 1
            ):
                failures.append(("legacy 200 without produce", case.query))

        run()
    assert failures == []
    # the generator did reach the happy paths, not only the error ones
    assert 202 in statuses["/v1/events"]
    assert 200 in statuses["/buy_a_sword"]
