"""Deny by default: a page or API method that declares no permission is refused, and the
``upserts.E001`` check names it before the console starts."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import make_user
from upserts.checks import check_every_view_declares_its_permission

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


def test_every_view_of_the_console_declares_its_permission():
    assert check_every_view_declares_its_permission() == []
    call_command("check", "--fail-level", "ERROR")


@override_settings(ROOT_URLCONF="tests.undeclared_urls")
def test_the_check_names_each_view_and_method_that_declares_nothing():
    errors = check_every_view_declares_its_permission()

    assert sorted(e.msg for e in errors) == [
        "/api/half/ (half): POST declares no permission.",
        "/api/own/ (own): permission classes declares no permission.",
        "/forgotten/ (forgotten): page declares no permission.",
    ]
    assert {e.id for e in errors} == {"upserts.E001"}
    with pytest.raises(SystemCheckError, match="upserts.E001"):
        call_command("check")


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.undeclared_urls")
def test_what_declares_nothing_is_refused_even_to_a_superuser(client):
    root = make_user("root", superuser=True)
    client.force_login(root)
    api = APIClient()
    api.force_authenticate(root)

    assert client.get("/forgotten/").status_code == 403
    assert client.get("/declared/").status_code == 200
    assert api.get("/api/half/").status_code == 200
    refused = api.post("/api/half/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["message"] == "POST declares no permission here, so it is refused."
    assert api.put("/api/half/", {}, format="json").status_code == 405
