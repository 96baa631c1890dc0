"""Every form that changes something refuses a POST without its CSRF token."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import make_user
from tests.web.test_access import PAGES, page_address
from upserts.models import JobStatus

pytestmark = pytest.mark.django_db

POSTS = sorted(name for name, method in PAGES if method == "POST")


@pytest.mark.parametrize("name", POSTS)
def test_a_post_without_the_csrf_token_is_refused(unreachable_cluster, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("root", superuser=True))
    url = page_address(name, unreachable_cluster, PAGES[(name, "POST")][2] or JobStatus.PENDING)

    response = client.post(url)

    assert response.status_code == 403


def test_security_headers_are_set_on_every_page(client):
    response = client.get(reverse("login"))

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
