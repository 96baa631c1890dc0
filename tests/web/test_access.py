"""Every page: staff only, and each role gets exactly the pages and actions it is meant to."""

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from tests.factories import make_job
from tests.web.conftest import log_in, page_text
from upserts.models import ClusterEndpoint, JobStatus

pytestmark = pytest.mark.django_db

# What each role may do: read, operate jobs, manage clusters ("staff": any staff account).
GRANTS = {
    "viewer": {"staff", "view"},
    "operator": {"staff", "view", "operate"},
    "cluster_admin": {"staff", "view", "operate", "manage"},
    "superuser": {"staff", "view", "operate", "manage"},
}


def _job(cluster: ClusterEndpoint, **fields: Any) -> dict[str, int]:
    fields.setdefault("file_format", "jsonl")
    return {"pk": make_job(cluster, content=b'{"id": 1}\n', **fields).pk}


# (url name, arguments from the cluster, method, what it needs)
PAGES: list[tuple[str, Callable[[ClusterEndpoint], dict[str, Any]], str, str]] = [
    ("dashboard", lambda c: {}, "get", "staff"),
    ("job_list", lambda c: {}, "get", "view"),
    ("job_detail", _job, "get", "view"),
    ("job_live", _job, "get", "view"),
    ("job_failed_rows", _job, "get", "view"),
    ("job_cancel", _job, "post", "operate"),
    ("job_resume", lambda c: _job(c, status=JobStatus.FAILED), "post", "operate"),
    ("job_retry", lambda c: _job(c, status=JobStatus.FAILED), "post", "operate"),
    ("upload_new", lambda c: {}, "get", "operate"),
    ("upload_new", lambda c: {}, "post", "operate"),
    ("upload_collections", lambda c: {}, "get", "operate"),
    ("upload_preview", _job, "get", "view"),
    ("upload_start", _job, "post", "operate"),
    ("upload_cancel", _job, "post", "operate"),
    ("cluster_list", lambda c: {}, "get", "view"),
    ("cluster_detail", lambda c: {"pk": c.pk}, "get", "view"),
    ("cluster_collections", lambda c: {"pk": c.pk}, "get", "view"),
    ("collection_schema", lambda c: {"pk": c.pk, "collection": "books"}, "get", "view"),
    ("cluster_create", lambda c: {}, "get", "manage"),
    ("cluster_create", lambda c: {}, "post", "manage"),
    ("cluster_edit", lambda c: {"pk": c.pk}, "get", "manage"),
    ("cluster_edit", lambda c: {"pk": c.pk}, "post", "manage"),
    ("cluster_delete", lambda c: {"pk": c.pk}, "get", "manage"),
    ("cluster_delete", lambda c: {"pk": c.pk}, "post", "manage"),
    ("cluster_test", lambda c: {"pk": c.pk}, "post", "manage"),
    ("audit_list", lambda c: {}, "get", "view"),
    ("audit_export", lambda c: {}, "get", "view"),
    ("entity_lookup", lambda c: {}, "get", "view"),
]
ROLES = ["anonymous", "non_staff", "viewer", "operator", "cluster_admin", "superuser"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "arguments", "method", "needs"),
    PAGES,
    ids=[f"{method}-{name}" for name, _, method, _ in PAGES],
)
def test_each_role_reaches_exactly_its_pages(
    client, unreachable_cluster, role, name, arguments, method, needs
):
    url = reverse(name, kwargs=arguments(unreachable_cluster))
    log_in(client, role)

    response = getattr(client, method)(url)

    if role == "anonymous":
        assert response.status_code == 302
        assert response.url.startswith(reverse("login") + "?next=")
    elif needs not in GRANTS.get(role, set()):
        assert response.status_code == 403
        assert "You may not open this page" in page_text(response)
    else:
        assert response.status_code in (200, 302, 409), page_text(response)[:500]
        if response.status_code == 302:
            assert not response.url.startswith(reverse("login"))


def test_anonymous_htmx_request_is_sent_to_the_login_page_as_a_whole(client, unreachable_cluster):
    response = client.get(
        reverse("cluster_collections", args=[unreachable_cluster.pk]),
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("login")


def test_a_logged_in_account_that_is_not_staff_gets_a_403_not_a_login_loop(client):
    log_in(client, "non_staff")

    response = client.get(reverse("job_list"))

    assert response.status_code == 403
    assert "for staff accounts only" in page_text(response)


@pytest.mark.parametrize(
    ("role", "visible", "hidden"),
    [
        ("viewer", ["Jobs", "Clusters", "Audit", "API docs"], ["New upload", "Add cluster"]),
        ("operator", ["New upload"], ["Add cluster"]),
        ("cluster_admin", ["New upload", "Add cluster"], []),
    ],
)
def test_navigation_offers_what_the_role_may_use(client, role, visible, hidden):
    log_in(client, role)

    page = page_text(client.get(reverse("cluster_list")))

    assert all(label in page for label in visible)
    assert not any(label in page for label in hidden)
    assert 'href="/api/docs/"' in page
