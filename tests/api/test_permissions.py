"""Every endpoint of the URLconf against every kind of caller, with the exact answer each gets.

The endpoints and the methods each view answers are read from the URLconf, so one added
without a line in ``ENDPOINTS`` fails here; what each needs is written here by hand and
compared with what the view declares.
"""

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.urls import reverse

from tests.factories import make_cluster, make_job, make_user
from tests.web.test_access import GRANTS
from upserts import roles
from upserts.api.permissions import answers
from upserts.checks import API_METHODS, url_patterns
from upserts.models import ApiToken, AuditEvent, JobStatus
from upserts.services.api_tokens import create_api_token

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "non_staff", "staff", "viewer", "operator", "cluster_admin", "superuser"]

# (endpoint, method): (the permission it needs, the status a caller holding it gets). Every
# request names a job, cluster or token that exists and sends an empty JSON body; the cluster
# listens nowhere (so the endpoints that ask it answer 502) and has a job (so it cannot be
# deleted). A method not listed is answered 405 to every staff account.
ENDPOINTS: dict[tuple[str, str], tuple[str, int]] = {
    ("api:schema", "GET"): (roles.ANY_STAFF, 200),
    ("api:docs", "GET"): (roles.ANY_STAFF, 200),
    ("api:job-list", "GET"): (roles.VIEW_JOBS, 200),
    ("api:job-list", "POST"): (roles.OPERATE_JOBS, 400),
    ("api:job-detail", "GET"): (roles.VIEW_JOBS, 200),
    ("api:job-batches", "GET"): (roles.VIEW_JOBS, 200),
    ("api:job-failed-rows", "GET"): (roles.VIEW_JOBS, 200),
    ("api:job-cancel", "POST"): (roles.OPERATE_JOBS, 200),
    ("api:job-resume", "POST"): (roles.OPERATE_JOBS, 409),
    ("api:job-retry-failed", "POST"): (roles.OPERATE_JOBS, 409),
    ("api:cluster-list", "GET"): (roles.VIEW_CLUSTERS, 200),
    ("api:cluster-list", "POST"): (roles.ADD_CLUSTERS, 400),
    ("api:cluster-detail", "GET"): (roles.VIEW_CLUSTERS, 200),
    ("api:cluster-detail", "PUT"): (roles.MANAGE_CLUSTERS, 400),
    ("api:cluster-detail", "PATCH"): (roles.MANAGE_CLUSTERS, 200),
    ("api:cluster-detail", "DELETE"): (roles.DELETE_CLUSTERS, 409),
    ("api:cluster-test", "POST"): (roles.MANAGE_CLUSTERS, 502),
    ("api:cluster-collections", "GET"): (roles.VIEW_CLUSTERS, 502),
    ("api:cluster-collection", "GET"): (roles.VIEW_CLUSTERS, 502),
    ("api:audit-list", "GET"): (roles.VIEW_AUDIT, 200),
    ("api:entity-lookup", "GET"): (roles.VIEW_AUDIT, 200),
    ("api:token-list", "GET"): (roles.ANY_STAFF, 200),
    ("api:token-list", "POST"): (roles.ANY_STAFF, 400),
    ("api:token-detail", "GET"): (roles.ANY_STAFF, 200),
    ("api:token-detail", "DELETE"): (roles.ANY_STAFF, 204),
    # tus: no Tus-Resumable header (412); another's or no upload (404).
    ("api:upload-list", "POST"): (roles.OPERATE_JOBS, 412),
    ("api:upload-detail", "GET"): (roles.OPERATE_JOBS, 404),
    ("api:upload-detail", "PATCH"): (roles.OPERATE_JOBS, 404),
    ("api:upload-detail", "DELETE"): (roles.OPERATE_JOBS, 404),
}
QUERIES = {"api:entity-lookup": "?collection=books&id=1"}
BODY_FORMATS = {"api:job-list": "multipart"}  # a file upload; JSON would be a 415


def _endpoints() -> dict[str, Any]:
    return {
        name: pattern
        for route, name, pattern in url_patterns()
        if route.startswith("api/") and hasattr(pattern.callback, "cls")
    }


def test_every_endpoint_and_method_of_the_urlconf_is_in_the_matrix_as_declared():
    answered = {
        (name, method)
        for name, pattern in _endpoints().items()
        for method in API_METHODS
        if answers(method, pattern.callback.cls())
    }

    assert answered == set(ENDPOINTS)
    for (name, method), (permission, _) in ENDPOINTS.items():
        assert _endpoints()[name].callback.cls.required_permissions[method] == permission


def _call(client, name: str, method: str):
    cluster = make_cluster("closed", base_url="http://127.0.0.1:9")
    job = make_job(cluster, status=JobStatus.RUNNING)
    kwargs: dict[str, Any] = {}
    converters = _endpoints()[name].pattern.converters
    if "pk" in converters:
        if name.startswith("api:job"):
            kwargs["pk"] = job.pk
        elif name.startswith("api:upload"):
            kwargs["pk"] = uuid.uuid4()
        elif name.startswith("api:token"):
            # The caller's own token (the one it authenticates with), or any for anonymous.
            token = ApiToken.objects.order_by("-pk").first() or _someone_elses_token()
            kwargs["pk"] = token.pk
        else:
            kwargs["pk"] = cluster.pk
    if "name" in converters:
        kwargs["name"] = "books"
    url = reverse(name, kwargs=kwargs) + QUERIES.get(name, "")
    if method == "GET":
        return client.get(url)
    return getattr(client, method.lower())(url, {}, format=BODY_FORMATS.get(name, "json"))


def _someone_elses_token() -> ApiToken:
    return create_api_token(user=make_user("someone"), name="theirs").token


def _expected(who: str, name: str, method: str) -> int:
    if who == "anonymous":
        return 401
    if who == "non_staff":
        return 403
    listed = ENDPOINTS.get((name, method))
    if listed is None:
        return 405
    permission, status = listed
    return status if permission in GRANTS[who] else 403


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize(
    ("name", "method"), [(n, m) for n in sorted(_endpoints()) for m in API_METHODS]
)
def test_each_caller_gets_exactly_the_answer_the_matrix_says(api_as, who, name, method):
    response = _call(api_as(who), name, method)

    expected = _expected(who, name, method)
    assert response.status_code == expected, response.content[:500]
    if name in ("api:schema", "api:docs"):
        return  # OpenAPI and HTML whatever the status: the status says it all
    if expected == 401:
        assert response["WWW-Authenticate"] == 'Token realm="api"'
        assert response.json()["code"] == "not_authenticated"
    elif expected == 403 and who == "non_staff":
        assert response.json() == {
            "code": "permission_denied",
            "message": "The API is for staff accounts only.",
            "details": {},
        }
    elif expected == 403:
        body = response.json()
        assert body["code"] == "permission_denied"
        assert "ask an administrator to add you to the" in body["message"]


def test_a_refused_viewer_changes_nothing_and_leaves_no_audit_event(api_as):
    job = make_job()
    viewer = api_as("viewer")
    events_before = AuditEvent.objects.count()

    response = viewer.post(f"/api/v1/jobs/{job.pk}/cancel/")

    job.refresh_from_db()
    assert response.status_code == 403
    assert "upserts.operate_upsertjob" in response.json()["message"]
    assert job.status == JobStatus.PENDING and not job.cancel_requested
    assert AuditEvent.objects.count() == events_before


def test_a_role_taken_away_reaches_a_polling_token_within_seconds(api_as):
    viewer = api_as("viewer")
    job = make_job()
    assert viewer.get(f"/api/v1/jobs/{job.pk}/").status_code == 200

    User.objects.get(username="viewer").groups.clear()
    cache.clear()  # as PERMISSION_CACHE_SECONDS pass

    assert viewer.get(f"/api/v1/jobs/{job.pk}/").status_code == 403


def test_a_token_stops_at_once_when_its_account_loses_staff_status(api_as):
    viewer = api_as("viewer")
    job = make_job()
    assert viewer.get(f"/api/v1/jobs/{job.pk}/").status_code == 200

    User.objects.filter(username="viewer").update(is_staff=False)

    assert viewer.get(f"/api/v1/jobs/{job.pk}/").status_code == 403
