"""Traces: off by default, on by the OTEL_* variables, exported to an in-process collector (faceservice/tracing.py)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from faceservice import tracing
from tests.embeddings.conftest import PROBES, enroll, photo


@pytest.fixture
def exported():
    """Tracing on in this process, every span kept in memory (the SDK's in-process collector)."""
    from django.db import connection

    exporter = InMemorySpanExporter()
    assert tracing.configure("faceservice-tests", exporter=exporter, batch=False)
    tracing.trace_database_connection(connection)  # opened before tracing started
    yield exporter
    tracing.shutdown()
    connection.execute_wrappers.remove(tracing.database_span)


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
    ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
    ({"OTEL_TRACES_EXPORTER": "none"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, None),
])
def test_off_by_default_and_on_by_the_standard_variables(environ, expected):
    assert tracing.exporter_name(environ) == expected


def test_off_means_no_span_and_no_cost():
    assert not tracing.enabled()
    with tracing.span("anything", count=1) as current:
        assert current is None


def test_a_search_request_is_one_trace_with_its_spans(tenant, client_for, exported):
    enroll(tenant)
    exported.clear()
    client = client_for(tenant, ("searcher",))
    upload = SimpleUploadedFile("probe.jpg", photo(PROBES / "obama1.jpg"), content_type="image/jpeg")
    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    response = client.post("/v1/search", {"image": upload}, format="multipart",
                           HTTP_TRACEPARENT=f"00-{caller_trace}-b7ad6b7169203331-01")
    assert response.status_code == 200, response.content

    spans = exported.get_finished_spans()
    request = next(s for s in spans if s.name == "POST v1/search")
    # One trace, the caller's: every span of the request is in it.
    assert format(request.context.trace_id, "032x") == caller_trace
    in_request = [s for s in spans if s.context.trace_id == request.context.trace_id]
    names = {s.name for s in in_request}
    assert "gallery.load" in names
    assert any(name.startswith("db ") for name in names)
    assert request.attributes["http.route"] == "v1/search"
    assert request.attributes["http.response.status_code"] == 200
    # Nothing personal in any attribute: no ids, no paths with ids.
    for span in in_request:
        for name, value in span.attributes.items():
            assert str(tenant.id) not in str(value), (span.name, name)
            assert "face" not in name and "subject" not in name and "asset" not in name


def test_attributes_that_could_identify_are_dropped(exported):
    with tracing.span("check", subject_id="alice", face_count=3, asset_id="a1", api_key="k", status="ok"):
        pass
    (span,) = exported.get_finished_spans()
    assert dict(span.attributes) == {"status": "ok"}


def test_an_exception_marks_the_span_failed_with_its_type_only(exported):
    with pytest.raises(ValueError), tracing.span("failing"):
        raise ValueError("secret detail")
    (span,) = exported.get_finished_spans()
    assert span.status.status_code.name == "ERROR" and span.status.description == "ValueError"
    assert not span.events  # the message is not recorded


def test_a_kms_call_is_a_span_and_a_metric(exported, tmp_path):
    from faceservice import metrics
    from tenants.kms import LocalKmsProvider

    provider = LocalKmsProvider(path=tmp_path / "master.keys", create=True)
    key = provider.generate_data_key(context={"tenant": "t"})
    provider.decrypt_data_key(wrapped=key.wrapped, context={"tenant": "t"}, master_key_id=key.master_key_id)
    assert {"kms.generate_data_key", "kms.decrypt_data_key"} <= {s.name for s in exported.get_finished_spans()}
    text = metrics.exposition().decode()
    assert 'faceservice_kms_calls_total{operation="decrypt_data_key",provider="local"}' in text
