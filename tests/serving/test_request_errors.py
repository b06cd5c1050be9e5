"""Bad requests: each gets a clear 4xx that names the field or header and the problem, and
a small answer whatever was sent (nothing large is echoed back, no 5xx, no traceback)."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from strokeops.config import Settings
from strokeops.serving.app import create_app
from strokeops.serving.errors import MAX_REPORTED_ERRORS
from strokeops.serving.schemas import EXAMPLE
from tests.serving.compiled_app import fitted_model, model_store, running_app

PATIENT = EXAMPLE
JSON = {"Content-Type": "application/json"}
REQUIRED_FIELDS = 9  # all but bmi


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return fitted_model(rows=1500, seed=3)[1]


@contextmanager
def serving(settings: Settings, spec: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(settings, model_store=model_store(settings, spec))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, spec) -> Iterator[TestClient]:
    with serving(Settings(state_dir=tmp_path_factory.mktemp("errors")), spec) as test_client:
        yield test_client


def test_batch_over_the_limit_is_413_naming_the_limit(tmp_path: Path, spec) -> None:
    with serving(Settings(state_dir=tmp_path, batch_limit=3), spec) as small:
        response = small.post("/v1/predict/batch", json={"patients": [PATIENT] * 4})
    assert response.status_code == 413
    assert response.json() == {
        "detail": "a batch holds at most 3 patients (STROKEOPS_BATCH_LIMIT); this one has 4"
    }


def test_a_bad_explain_flag_is_422_naming_it(client) -> None:
    response = client.post("/v1/predict?explain=perhaps", json=PATIENT)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"], error["input"]) == (
        ["query", "explain"],
        "bool_parsing",
        "perhaps",
    )


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/predict/batch"])
@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_422(client, path, body) -> None:
    headers = {"Content-Type": "application/json"}
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body"]
    assert error["type"] in {"json_invalid", "dict_type"}


@pytest.mark.parametrize(
    ("change", "field", "error_type"),
    [
        ({"gender": "Alien"}, "gender", "literal_error"),
        ({"age": "sixty"}, "age", "float_type"),
        ({"age": -1}, "age", "greater_than_equal"),
        ({"age": 1e9}, "age", "less_than_equal"),
        ({"age": None}, "age", "float_type"),
        ({"hypertension": 2}, "hypertension", "literal_error"),
        ({"hypertension": "yes"}, "hypertension", "literal_error"),
        ({"heart_disease": 0.5}, "heart_disease", "literal_error"),
        ({"bmi": 500}, "bmi", "less_than_equal"),
        ({"work_type": "Astronaut"}, "work_type", "literal_error"),
        ({"residence_type": "urban"}, "residence_type", "literal_error"),
        ({"favourite_colour": "blue"}, "favourite_colour", "extra_forbidden"),
    ],
)
def test_invalid_input_is_422_naming_the_field(client, change, field, error_type) -> None:
    response = client.post("/v1/predict", json=PATIENT | change)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", field], error_type)]


def test_huge_invalid_values_are_not_echoed_back(client) -> None:
    response = client.post("/v1/predict", json=PATIENT | {"gender": "x" * 100_000})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "gender"]
    assert error["input"] == "x" * 100 + "… (100000 characters)"
    unknown = client.post("/v1/predict", json=PATIENT | {"y" * 5000: 1})
    assert unknown.json()["detail"][0]["loc"] == ["body", "y" * 100 + "… (5000 characters)"]
    assert len(unknown.content) < 2000


def test_missing_required_field_is_named(client) -> None:
    patient = {k: v for k, v in PATIENT.items() if k != "smoking_status"}
    errors = client.post("/v1/predict", json=patient).json()["detail"]
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", "smoking_status"], "missing")]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_422_not_500(client, literal) -> None:
    body = str(PATIENT).replace("'", '"').replace("228.69", literal).replace("None", "null")
    response = client.post(
        "/v1/predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "avg_glucose_level"]
    assert error["type"] == "finite_number"


def test_batch_errors_name_the_row_and_field(client) -> None:
    response = client.post(
        "/v1/predict/batch", json={"patients": [PATIENT, PATIENT | {"age": "x"}]}
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "patients", 1, "age"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_body_that_is_not_json_is_415(client, content_type) -> None:
    import json

    for path in ("/v1/predict", "/v1/predict/batch"):
        response = client.post(
            path, content=json.dumps(PATIENT), headers={"Content-Type": content_type}
        )
        assert response.status_code == 415, path
        assert response.json() == {
            "detail": f"Content-Type must be application/json; {content_type!r}"
        }


def test_a_body_without_content_type_is_415(client) -> None:
    import json

    response = client.post("/v1/predict", content=json.dumps(PATIENT))
    assert "content-type" not in response.request.headers
    assert response.status_code == 415
    assert response.json() == {"detail": "Content-Type must be application/json; none was sent"}
    # a POST without a body needs no Content-Type
    assert client.post("/v1/admin/reload").status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"],
)
def test_json_media_types_are_accepted(client, content_type) -> None:
    import json

    headers = {"Content-Type": content_type}
    response = client.post("/v1/predict", content=json.dumps(PATIENT), headers=headers)
    assert response.status_code == 200, response.text


def test_a_body_over_the_size_limit_is_413_before_it_is_read(tmp_path: Path, spec) -> None:
    with serving(Settings(state_dir=tmp_path, max_body_bytes=2048), spec) as small:
        big = {"patients": [PATIENT] * 20}  # about 5 kB
        response = small.post("/v1/predict/batch", json=big)
        assert response.status_code == 413
        size = int(response.request.headers["content-length"])
        assert response.json() == {
            "detail": f"request body too large: {size} bytes; the limit is 2048 bytes "
            "(STROKEOPS_MAX_BODY_BYTES)"
        }

        def chunks():  # no Content-Length: the limit holds while the body streams in
            for _ in range(10):
                yield b" " * 1000

        json_type = {"Content-Type": "application/json"}
        streamed = small.post("/v1/predict", content=chunks(), headers=json_type)
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        assert streamed.json()["detail"].endswith("limit is 2048 bytes (STROKEOPS_MAX_BODY_BYTES)")

        def small_chunks():  # a chunked body under the limit is read as usual
            import json

            body = json.dumps(PATIENT).encode()
            yield body[:50]
            yield body[50:]

        chunked = small.post("/v1/predict", content=small_chunks(), headers=json_type)
        assert chunked.status_code == 200, chunked.text
        assert small.post("/v1/predict", json=PATIENT).status_code == 200


def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit() -> None:
    """The TestClient sends a streamed body in one piece; drive the middleware directly."""
    import asyncio

    from strokeops.serving.limits import RequestLimitsMiddleware

    inner_called = False

    async def inner(scope, receive, send) -> None:
        nonlocal inner_called
        inner_called = True

    received, sent = 0, []

    async def receive():
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b" " * 1000, "more_body": received < 10}

    async def send(message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/predict",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
    }
    asyncio.run(RequestLimitsMiddleware(inner, max_body_bytes=2048)(scope, receive, send))
    assert received == 3  # 3,000 bytes read, 7,000 never
    assert not inner_called
    assert sent[0]["status"] == 413
    assert sent[1]["body"] == (
        b'{"detail":"request body too large: 3000 bytes; the limit is 2048 bytes '
        b'(STROKEOPS_MAX_BODY_BYTES)"}'
    )


# --- answers stay small whatever was sent ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/v1/predict", "one patient"), ("/v1/predict/batch", '{"patients": [...]}')],
)
@pytest.mark.parametrize("headers", [JSON, {}])
def test_an_empty_body_is_422_saying_so(client, path, expected, headers) -> None:
    response = client.post(path, content=b"", headers=headers)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body"],
                "msg": f"the request body is empty; send {expected} as JSON",
            }
        ]
    }


def test_unparsable_json_is_not_echoed_back(client) -> None:
    body = b'{"gender": "' + b"x" * 1_000_000
    response = client.post("/v1/predict", content=body, headers=JSON)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"]) == ("json_invalid", ["body"])
    assert error["msg"].startswith("Invalid JSON: EOF while parsing a string")
    assert "input" not in error
    assert len(response.content) < 500


def test_a_missing_field_does_not_echo_the_whole_patient(client) -> None:
    patient = {k: v for k, v in PATIENT.items() if k != "smoking_status"} | {"note": "x" * 99}
    [missing, extra] = client.post("/v1/predict", json=patient).json()["detail"]
    assert missing == {
        "type": "missing",
        "loc": ["body", "smoking_status"],
        "msg": "Field required",
    }
    assert extra == {
        "type": "extra_forbidden",
        "loc": ["body", "note"],
        "msg": "Extra inputs are not permitted",
        "input": "x" * 99,
    }


def test_a_batch_of_empty_patients_reports_the_first_errors_and_counts_the_rest(client) -> None:
    response = client.post("/v1/predict/batch", json={"patients": [{}] * 10_000})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == MAX_REPORTED_ERRORS + 1
    assert detail[0] == {
        "type": "missing",
        "loc": ["body", "patients", 0, "gender"],
        "msg": "Field required",
    }
    assert detail[-1] == {
        "type": "too_many_errors",
        "loc": ["body"],
        "msg": f"{10_000 * REQUIRED_FIELDS - MAX_REPORTED_ERRORS} more errors not shown",
    }
    assert len(response.content) < 10_000


def test_a_patient_of_many_unknown_keys_is_named_without_listing_each_key(client) -> None:
    body = json.dumps(PATIENT | {f"k{i}": 0 for i in range(300_000)}).encode()
    response = client.post("/v1/predict", content=body, headers=JSON)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "too_many_fields",
            "loc": ["body"],
            "msg": "this object has 300010 fields; at most 11 belong here",
        },
        {
            "type": "too_many_errors",
            "loc": ["body"],
            "msg": "299999 more errors not shown",
        },
    ]


def test_a_batch_of_overfull_patients_names_the_first_of_them(client) -> None:
    overfull = PATIENT | {f"k{i}": 0 for i in range(20)}
    rows = [PATIENT] * 3 + [overfull] * 100
    response = client.post("/v1/predict/batch", json={"patients": rows, "extra": 1})
    detail = response.json()["detail"]
    assert response.status_code == 422
    assert detail[0]["loc"] == ["body"]
    assert detail[0]["msg"] == "this object has 2 fields; at most 1 belong here"
    assert [error["loc"] for error in detail[1:3]] == [
        ["body", "patients", 3],
        ["body", "patients", 4],
    ]
    assert len(detail) == MAX_REPORTED_ERRORS + 1
    assert detail[-1]["msg"] == f"{2001 - MAX_REPORTED_ERRORS} more errors not shown"


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/predict/batch"])
def test_a_repeated_unknown_key_does_not_make_the_answer_costly(client, path) -> None:
    """JSON's repeated keys collapse into one when parsed, yet pydantic reports each."""
    patient = json.dumps(PATIENT)[:-1] + ', "k": 0' * 200_000 + "}"
    body = patient if path == "/v1/predict" else f'{{"patients": [{patient}, {patient}]}}'
    response = client.post(path, content=body.encode(), headers=JSON)
    assert response.status_code == 422
    detail = response.json()["detail"]
    where = ["body"] if path == "/v1/predict" else ["body", "patients", 0]
    assert detail[0] == {
        "type": "extra_forbidden",
        "loc": [*where, "k"],
        "msg": "Extra inputs are not permitted",
        "input": 0,
    }
    rows = 1 if path == "/v1/predict" else 2
    assert detail[-1]["msg"] == f"{200_000 * rows - len(detail) + 1} more errors not shown"


def test_many_errors_without_an_overfull_object_are_listed_as_usual(client) -> None:
    rows = [PATIENT | {"age": -1, "bmi": 999}] * 600  # 1,200 errors, no object too large
    detail = client.post("/v1/predict/batch", json={"patients": rows}).json()["detail"]
    assert detail[0]["loc"] == ["body", "patients", 0, "age"]
    assert detail[-1]["msg"] == f"{1_200 - MAX_REPORTED_ERRORS} more errors not shown"


# --- messages that say what this API accepts -------------------------------------------------


def test_a_binary_field_error_lists_every_accepted_value(client) -> None:
    [error] = client.post("/v1/predict", json=PATIENT | {"hypertension": "yes"}).json()["detail"]
    assert error["msg"] == "Input should be 0, 1, false or true"


def test_both_spellings_of_residence_type_is_a_clear_error(client) -> None:
    patient = PATIENT | {"Residence_type": "Rural"}
    [error] = client.post("/v1/predict", json=patient).json()["detail"]
    assert error["loc"] == ["body", "Residence_type"]
    assert error["msg"] == "send residence_type or its alias Residence_type, not both"


def test_an_empty_batch_is_422(client) -> None:
    response = client.post("/v1/predict/batch", json={"patients": []})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"]) == ("too_short", ["body", "patients"])


def test_explain_on_a_batch_is_422_pointing_to_the_single_route(client) -> None:
    response = client.post("/v1/predict/batch?explain=true", json={"patients": [PATIENT]})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "unsupported",
            "loc": ["query", "explain"],
            "msg": "factors are explained one patient at a time: POST /v1/predict",
        }
    ]
    unparsable = client.post("/v1/predict/batch?explain=perhaps", json={"patients": [PATIENT]})
    assert unparsable.json()["detail"][0]["type"] == "bool_parsing"
    harmless = client.post("/v1/predict/batch?explain=false", json={"patients": [PATIENT]})
    assert harmless.status_code == 200


def test_a_byte_order_mark_before_the_json_is_ignored(client) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(PATIENT).encode()
    assert client.post("/v1/predict", content=body, headers=JSON).status_code == 200


def test_a_trailing_slash_is_404_not_a_redirect_built_from_the_host_header(client) -> None:
    response = client.post("/v1/predict/", json=PATIENT, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (
            {"Content-Type": "application/json; charset=latin-1"},
            "JSON bodies must be UTF-8; charset 'latin-1' was declared",
        ),
        (
            JSON | {"Content-Encoding": "gzip"},
            "Content-Encoding 'gzip' is not supported; send the body uncompressed",
        ),
    ],
)
def test_a_body_in_another_charset_or_compressed_is_415(client, headers, detail) -> None:
    response = client.post("/v1/predict", content=json.dumps(PATIENT), headers=headers)
    assert response.status_code == 415
    assert response.json() == {"detail": detail}


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": 'application/json; charset="UTF-8"'},
        JSON | {"Content-Encoding": "identity"},
    ],
)
def test_utf8_and_identity_are_accepted(client, headers) -> None:
    response = client.post("/v1/predict", content=json.dumps(PATIENT), headers=headers)
    assert response.status_code == 200, response.text


def test_a_huge_header_is_not_echoed_back_in_a_415(client) -> None:
    response = client.post(
        "/v1/predict", content=b"{}", headers={"Content-Type": "text/" + "a" * 100_000}
    )
    assert response.status_code == 415
    assert response.json() == {
        "detail": f"Content-Type must be application/json; {'text/' + 'a' * 95!r}…"
    }


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (
            [("Content-Type", "application/json"), ("Content-Type", "text/plain")],
            "send one Content-Type header, application/json; several were sent",
        ),
        (
            [
                ("Content-Type", "application/json"),
                ("Content-Encoding", "identity"),
                ("Content-Encoding", "gzip"),
            ],
            "Content-Encoding 'identity, gzip' is not supported; send the body uncompressed",
        ),
    ],
)
def test_repeated_body_headers_are_415(client, headers, detail) -> None:
    response = client.post("/v1/predict", content=json.dumps(PATIENT), headers=headers)
    assert response.status_code == 415
    assert response.json() == {"detail": detail}


@pytest.mark.parametrize(
    ("given", "kept"),
    [("order-17:a.b_C", True), ("tab\there", False), ("", False), ("ü", False), ("x" * 65, False)],
)
def test_a_client_request_id_is_kept_only_if_plain(client, given, kept) -> None:
    headers = {"X-Request-ID": given.encode()}
    response = client.post("/v1/predict", json=PATIENT, headers=headers)
    request_id = response.json()["request_id"]
    assert (request_id == given) is kept
    assert len(request_id) <= 64
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize("path", ["/", "/health/live", "/health/ready", "/metrics", "/v1/model"])
def test_every_get_route_answers_head(client, path) -> None:
    response = client.head(path)
    assert response.status_code == 200, path
    assert response.content == b""


def test_a_wrong_method_is_405_listing_the_allowed_ones(client) -> None:
    response = client.post("/health/live")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


# --- a client that hangs up ------------------------------------------------------------------


def test_a_client_that_hangs_up_mid_body_is_no_server_error(
    tmp_path: Path, spec, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with running_app(Settings(state_dir=tmp_path), spec) as base_url:
        address = urlsplit(base_url)
        with socket.create_connection((address.hostname, address.port)) as connection:
            connection.sendall(
                b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + b'{"gender": "Male"'
            )
            time.sleep(0.2)  # the app is waiting for the rest of the body
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            metrics = httpx.get(f"{base_url}/metrics").text
            if 'route="/v1/predict",status="499"} 1.0' in metrics:
                break
            time.sleep(0.05)
        assert 'route="/v1/predict",status="499"} 1.0' in metrics
        assert 'status="500"' not in metrics
        assert httpx.post(f"{base_url}/v1/predict", json=PATIENT).status_code == 200
    assert "client closed POST /v1/predict before sending its whole body" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
