"""Every error, whatever raised it, answers {"code", "message", "details"} with its status."""

import pytest
from rest_framework.exceptions import Throttled
from rest_framework.test import APIRequestFactory

from tests.factories import make_job
from upserts.api.errors import api_exception_handler
from upserts.milvus.errors import FatalTargetError

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code and body["message"] and isinstance(body["details"], dict)
    return body


def test_each_kind_of_error_has_the_one_shape(api_as):
    viewer, operator = api_as("viewer"), api_as("operator")
    job = make_job()

    assert_error_shape(api_as("anonymous").get("/api/v1/jobs/"), 401, "not_authenticated")
    assert_error_shape(viewer.post(f"/api/v1/jobs/{job.pk}/cancel/"), 403, "permission_denied")
    assert_error_shape(viewer.get("/api/v1/jobs/0/"), 404, "not_found")
    assert_error_shape(viewer.delete(f"/api/v1/jobs/{job.pk}/"), 405, "method_not_allowed")
    assert_error_shape(
        operator.post("/api/v1/jobs/", {}, format="json"), 415, "unsupported_media_type"
    )
    assert_error_shape(operator.post(f"/api/v1/jobs/{job.pk}/resume/"), 409, "job_action_refused")
    bad_json = operator.post("/api/v1/tokens/", data=b"{not json", content_type="application/json")
    assert_error_shape(bad_json, 400, "parse_error")


def test_validation_errors_name_each_field_in_details_and_message(api_as):
    response = api_as("operator").post("/api/v1/tokens/", {"name": ""}, format="json")

    body = assert_error_shape(response, 400, "validation_error")
    assert body["details"] == {"name": ["This field may not be blank."]}
    assert body["message"] == "Invalid input. name: This field may not be blank."


def test_an_address_under_the_api_that_names_no_endpoint_is_a_json_404(api_as):
    client = api_as("viewer")

    body = assert_error_shape(client.get("/api/v1/no-such-thing/"), 404, "not_found")
    hint = assert_error_shape(client.get("/api/v1/jobs"), 404, "not_found")

    assert "/api/v1/no-such-thing/" in body["message"]
    assert hint["message"].endswith("Did you mean /api/v1/jobs/?")


def test_throttling_answers_429_with_the_wait():
    request = APIRequestFactory().get("/api/v1/jobs/")

    response = api_exception_handler(Throttled(wait=7), {"request": request, "view": None})

    assert response is not None and response.status_code == 429
    assert response["Retry-After"] == "7"
    assert response.data == {
        "code": "throttled",
        "message": "Request was throttled. Expected available in 7 seconds.",
        "details": {"retry_after_seconds": 7},
    }


def test_a_cluster_error_is_a_502_with_the_clusters_own_words(api_as, monkeypatch):
    def refuse(*args, **kwargs):
        raise FatalTargetError("The cluster refused the credentials", code=1800, http_status=200)

    monkeypatch.setattr("upserts.services.clusters.list_collections", refuse)
    job = make_job()

    response = api_as("viewer").get(f"/api/v1/clusters/{job.cluster_id}/collections/")

    body = assert_error_shape(response, 502, "cluster_error")
    assert body["message"] == "The cluster refused the credentials"
    assert body["details"] == {"cluster_code": 1800, "cluster_http_status": 200}


def test_an_unexpected_failure_is_a_500_in_the_same_shape_and_is_logged(
    api_as, monkeypatch, caplog
):
    def broken(pk):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("upserts.selectors.job_detail", broken)

    response = api_as("viewer").get("/api/v1/jobs/1/")

    body = assert_error_shape(response, 500, "server_error")
    assert "disk on fire" not in body["message"]
    assert "disk on fire" in caplog.text
