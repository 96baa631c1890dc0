"""The console's pages: staff only, and a health check for load balancers."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_cluster, make_user

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get(reverse("dashboard"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_non_staff_user_cannot_see_the_console(client):
    client.force_login(make_user("guest", staff=False))

    response = client.get(reverse("dashboard"))

    # A 403, not a redirect to the login page: that page sends a logged-in user straight back.
    assert response.status_code == 403
    assert "for staff accounts only" in response.content.decode()


def test_staff_user_logs_in_and_sees_jobs_and_clusters(client):
    make_user("alice")
    make_cluster("demo-milvus")

    response = client.post(
        reverse("login"), {"username": "alice", "password": PASSWORD}, follow=True
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "No upload jobs yet." in page and "demo-milvus" in page and "alice" in page


def test_wrong_password_shows_an_error_on_the_login_form(client):
    make_user("alice")

    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_health_endpoint_answers_without_login(client):
    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_console_stylesheet_is_served_without_a_cdn(client):
    make_user("alice")
    client.login(username="alice", password=PASSWORD)

    page = client.get(reverse("dashboard")).content.decode()

    assert "/static/console.css" in page and "https://" not in page
