"""Error pages in the console's look: 403, 404 and 500."""

import pytest
from django.test import RequestFactory
from django.urls import reverse

from tests.helpers import log_in, page_text
from upserts.views import errors

pytestmark = pytest.mark.django_db


def test_a_missing_page_is_a_404_in_the_consoles_look(client):
    log_in(client, "viewer")

    response = client.get("/no/such/page/")

    page = page_text(response)
    assert response.status_code == 404
    assert "There is nothing here" in page and "/no/such/page/" in page
    assert "/static/console.css" in page and 'href="/jobs/"' in page


def test_a_refused_page_is_a_403_that_says_why(client):
    log_in(client, "viewer")

    response = client.get(reverse("cluster_create"))

    page = page_text(response)
    assert response.status_code == 403
    assert "Your account&#x27;s role does not allow this." in page
    assert "/static/console.css" in page


def test_a_server_error_is_a_500_in_the_same_look_without_touching_the_database():
    request = RequestFactory().get("/jobs/")

    response = errors.server_error(request)

    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in page and "/static/console.css" in page


def test_an_unexpected_exception_renders_the_500_page(client, monkeypatch):
    log_in(client, "viewer")

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("upserts.selectors.audit_events", broken)
    client.raise_request_exception = False

    response = client.get(reverse("audit_list"))

    assert response.status_code == 500
    assert "Something went wrong on our side" in page_text(response)
    assert "boom" not in page_text(response)
