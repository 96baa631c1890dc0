"""Every endpoint against every kind of caller: anonymous 401, non-staff 403, then the roles."""

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from tests.factories import make_cluster, make_job
from upserts.models import AuditEvent, JobStatus

pytestmark = pytest.mark.django_db

VIEW, OPERATE, MANAGE, STAFF = "view", "operate", "manage", "staff"

# (method, address, what it needs); {job} and {cluster} are filled in per test.
ENDPOINTS = [
    ("get", "/api/v1/jobs/", VIEW),
    ("post", "/api/v1/jobs/", OPERATE),
    ("get", "/api/v1/jobs/{job}/", VIEW),
    ("get", "/api/v1/jobs/{job}/batches/", VIEW),
    ("get", "/api/v1/jobs/{job}/failed-rows/", VIEW),
    ("post", "/api/v1/jobs/{job}/cancel/", OPERATE),
    ("post", "/api/v1/jobs/{job}/resume/", OPERATE),
    ("post", "/api/v1/jobs/{job}/retry-failed/", OPERATE),
    ("get", "/api/v1/clusters/", VIEW),
    ("post", "/api/v1/clusters/", MANAGE),
    ("get", "/api/v1/clusters/{cluster}/", VIEW),
    ("put", "/api/v1/clusters/{cluster}/", MANAGE),
    ("patch", "/api/v1/clusters/{cluster}/", MANAGE),
    ("delete", "/api/v1/clusters/{cluster}/", MANAGE),
    ("post", "/api/v1/clusters/{cluster}/test/", MANAGE),
    ("get", "/api/v1/clusters/{cluster}/collections/", VIEW),
    ("get", "/api/v1/clusters/{cluster}/collections/books/", VIEW),
    ("get", "/api/v1/audit/", VIEW),
    ("get", "/api/v1/entities/lookup/?collection=books&id=1", VIEW),
    ("get", "/api/v1/tokens/", STAFF),
    ("post", "/api/v1/tokens/", STAFF),
]

GRANTS = {
    "staff": {STAFF},
    "viewer": {STAFF, VIEW},
    "operator": {STAFF, VIEW, OPERATE},
    "cluster_admin": {STAFF, VIEW, OPERATE, MANAGE},
    "superuser": {STAFF, VIEW, OPERATE, MANAGE},
}


def _call(client, method: str, address: str):
    # Nothing listens on port 9: the cluster endpoints fail fast (502) when they are allowed.
    cluster = make_cluster("closed", base_url="http://127.0.0.1:9")
    job = make_job(cluster)
    url = address.format(job=job.pk, cluster=cluster.pk)
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, {}, format="json")


@pytest.mark.parametrize(("method", "address", "needs"), ENDPOINTS)
def test_anonymous_callers_are_asked_to_authenticate(api_as, method, address, needs):
    response = _call(api_as("anonymous"), method, address)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Token realm="api"'
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "address", "needs"), ENDPOINTS)
def test_accounts_that_are_not_staff_are_refused(api_as, method, address, needs):
    response = _call(api_as("non_staff"), method, address)

    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "message": "The API is for staff accounts only.",
        "details": {},
    }


@pytest.mark.parametrize("who", sorted(GRANTS))
@pytest.mark.parametrize(("method", "address", "needs"), ENDPOINTS)
def test_each_role_reaches_what_it_grants_and_nothing_else(api_as, who, method, address, needs):
    response = _call(api_as(who), method, address)

    if needs in GRANTS[who]:
        assert response.status_code not in (401, 403), response.content
    else:
        assert response.status_code == 403
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
