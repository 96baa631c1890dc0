"""Every page of the URLconf against every kind of visitor, with the exact answer each gets.

The pages are read from the URLconf, so a page added without a line in ``PAGES`` fails here;
what each page needs is written here by hand and compared with what the view declares, so a
view declaring the wrong permission fails too.
"""

import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import make_job
from tests.helpers import log_in, page_text
from upserts import roles
from upserts.checks import url_patterns
from upserts.models import ClusterEndpoint, JobStatus

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

ROLES = ["anonymous", "non_staff", "staff", "viewer", "operator", "cluster_admin", "superuser"]
_VIEW = {roles.ANY_STAFF, roles.VIEW_JOBS, roles.VIEW_CLUSTERS, roles.VIEW_AUDIT}
_OPERATE = _VIEW | {roles.OPERATE_JOBS}
_MANAGE = _OPERATE | {roles.ADD_CLUSTERS, roles.MANAGE_CLUSTERS, roles.DELETE_CLUSTERS}
GRANTS: dict[str, set[str]] = {
    "staff": {roles.ANY_STAFF},
    "viewer": _VIEW,
    "operator": _OPERATE,
    "cluster_admin": _MANAGE,
    "superuser": _MANAGE,
}

# (page, method): (the permission it needs, the status a visitor holding it gets, the status
# of the job the page is opened for). A method not listed is answered 405 to everyone.
PAGES: dict[tuple[str, str], tuple[str, int, str]] = {
    ("dashboard", "GET"): (roles.ANY_STAFF, 200, ""),
    ("job_list", "GET"): (roles.VIEW_JOBS, 200, ""),
    ("job_detail", "GET"): (roles.VIEW_JOBS, 200, JobStatus.PENDING),
    ("job_live", "GET"): (roles.VIEW_JOBS, 200, JobStatus.RUNNING),
    ("job_failed_rows", "GET"): (roles.VIEW_JOBS, 200, JobStatus.FAILED),
    ("job_cancel", "POST"): (roles.OPERATE_JOBS, 302, JobStatus.RUNNING),
    ("job_resume", "POST"): (roles.OPERATE_JOBS, 302, JobStatus.FAILED),
    ("job_retry", "POST"): (roles.OPERATE_JOBS, 302, JobStatus.FAILED),
    ("job_send_checked", "POST"): (roles.OPERATE_JOBS, 302, JobStatus.FAILED),
    ("upload_new", "GET"): (roles.OPERATE_JOBS, 200, ""),
    ("upload_new", "POST"): (roles.OPERATE_JOBS, 200, ""),
    ("upload_collections", "GET"): (roles.OPERATE_JOBS, 200, ""),
    ("upload_preview", "GET"): (roles.VIEW_JOBS, 200, JobStatus.PENDING),
    ("upload_mapping", "POST"): (roles.OPERATE_JOBS, 200, JobStatus.PENDING),
    # Without the tus header a tus request is refused (412); a PATCH is what sends a part.
    ("tus_uploads", "POST"): (roles.OPERATE_JOBS, 412, ""),
    ("tus_upload", "PATCH"): (roles.OPERATE_JOBS, 404, ""),
    # No such upload: the form again, saying so.
    ("tus_submit", "POST"): (roles.OPERATE_JOBS, 400, ""),
    ("upload_start", "POST"): (roles.OPERATE_JOBS, 302, JobStatus.PENDING),
    ("upload_check", "POST"): (roles.OPERATE_JOBS, 302, JobStatus.PENDING),
    ("upload_cancel", "POST"): (roles.OPERATE_JOBS, 302, JobStatus.PENDING),
    ("cluster_list", "GET"): (roles.VIEW_CLUSTERS, 200, ""),
    ("cluster_detail", "GET"): (roles.VIEW_CLUSTERS, 200, ""),
    ("cluster_collections", "GET"): (roles.VIEW_CLUSTERS, 200, ""),
    ("collection_schema", "GET"): (roles.VIEW_CLUSTERS, 200, ""),
    ("cluster_create", "GET"): (roles.ADD_CLUSTERS, 200, ""),
    ("cluster_create", "POST"): (roles.ADD_CLUSTERS, 200, ""),
    ("cluster_edit", "GET"): (roles.MANAGE_CLUSTERS, 200, ""),
    ("cluster_edit", "POST"): (roles.MANAGE_CLUSTERS, 200, ""),
    ("cluster_delete", "GET"): (roles.DELETE_CLUSTERS, 200, ""),
    ("cluster_delete", "POST"): (roles.DELETE_CLUSTERS, 302, ""),
    ("cluster_test", "POST"): (roles.MANAGE_CLUSTERS, 302, ""),
    ("audit_list", "GET"): (roles.VIEW_AUDIT, 200, ""),
    ("audit_export", "GET"): (roles.VIEW_AUDIT, 200, ""),
    ("entity_lookup", "GET"): (roles.VIEW_AUDIT, 200, ""),
}
PUBLIC_PAGES = {"login", "logout", "healthz"}
METHODS = ("GET", "POST")


def _pages() -> dict[str, Any]:
    """Every page of the URLconf by name, the API's addresses and the admin's left out."""
    return {
        name: pattern
        for route, name, pattern in url_patterns()
        if not route.startswith("api/") and name not in PUBLIC_PAGES
    }


def test_every_page_of_the_urlconf_is_in_the_matrix_and_declares_what_it_lists():
    pages = _pages()

    assert set(pages) == {name for name, _ in PAGES}
    for (name, _), (permission, _, _) in PAGES.items():
        assert pages[name].callback.required_permission == permission, name


def test_the_only_pages_open_without_an_account_are_login_logout_and_health():
    public = {
        name
        for _, name, pattern in url_patterns()
        if getattr(pattern.callback, "required_permission", None) == roles.PUBLIC
    }

    assert public == PUBLIC_PAGES | {"api:not-found"}


def page_address(name: str, cluster: ClusterEndpoint, job_status: str) -> str:
    """The page's address for ``cluster``, or for a new job of it in ``job_status``."""
    arguments = _pages()[name].pattern.converters
    kwargs: dict[str, Any] = {}
    if "pk" in arguments:
        if name.startswith("tus_"):
            kwargs["pk"] = uuid.uuid4()
        elif name.startswith(("job_", "upload_")):
            job = make_job(cluster, content=b'{"id": 1}\n', file_format="jsonl", status=job_status)
            kwargs["pk"] = job.pk
        else:
            kwargs["pk"] = cluster.pk
    if "collection" in arguments:
        kwargs["collection"] = "books"
    return reverse(name, kwargs=kwargs)


def _expected(role: str, name: str, method: str) -> int:
    listed = PAGES.get((name, method))
    if listed is None:
        return 405  # require_http_methods answers before anyone is asked who they are
    permission, status, _ = listed
    if role == "anonymous":
        return 302
    if role == "non_staff" or permission not in GRANTS[role]:
        return 403
    return status


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method"), [(n, m) for n in sorted(_pages()) for m in METHODS])
def test_each_visitor_gets_exactly_the_answer_the_matrix_says(
    client: Client, unreachable_cluster, role, name, method
):
    job_status = PAGES.get((name, method), ("", 0, JobStatus.PENDING))[2] or JobStatus.PENDING
    url = page_address(name, unreachable_cluster, job_status)
    log_in(client, role)

    response = getattr(client, method.lower())(url)

    expected = _expected(role, name, method)
    assert response.status_code == expected, page_text(response)[:500]
    if expected == 302 and role == "anonymous":
        assert response.url.startswith(reverse("login") + "?next=")
    elif expected == 302:
        assert not response.url.startswith(reverse("login"))
    elif expected == 403 and role == "non_staff":
        assert "for staff accounts only" in page_text(response)
    elif expected == 403:
        assert "You may not open this page" in page_text(response)


def test_anonymous_htmx_request_is_sent_to_the_login_page_as_a_whole(client, unreachable_cluster):
    response = client.get(
        reverse("cluster_collections", args=[unreachable_cluster.pk]),
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("login")


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
