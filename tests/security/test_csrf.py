"""Every form that changes something refuses a POST without its CSRF token."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import make_user
from tests.web.test_access import PAGES

pytestmark = pytest.mark.django_db

POSTS = [(name, arguments) for name, arguments, method, _ in PAGES if method == "post"]


@pytest.mark.parametrize(("name", "arguments"), POSTS, ids=[name for name, _ in POSTS])
def test_a_post_without_the_csrf_token_is_refused(unreachable_cluster, name, arguments):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("root", superuser=True))
    url = reverse(name, kwargs=arguments(unreachable_cluster))

    response = client.post(url)

    assert response.status_code == 403


def test_security_headers_are_set_on_every_page(client):
    response = client.get(reverse("login"))

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
