"""Password guessing is cut short: too many failed logins for a username or from an IP are
refused for a while, whatever the password, and every failure is in the audit trail."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_user
from upserts.models import AuditAction, AuditEvent

pytestmark = pytest.mark.django_db


def attempt(client, username: str, password: str, ip: str = "10.0.0.1", url: str = "login"):
    return client.post(reverse(url), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_a_username_with_too_many_failures_is_refused_even_with_the_right_password(
    client, settings
):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    make_user("alice")
    for _ in range(3):
        assert attempt(client, "alice", "guess").status_code == 200

    response = attempt(client, "alice", PASSWORD)

    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).count() == 3
    event = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).first()
    assert event.details == {"username": "alice"} and event.client_ip == "10.0.0.1"


def test_one_ip_guessing_many_usernames_is_refused(client, settings):
    settings.LOGIN_FAILURES_PER_IP = 4
    make_user("bob")
    for name in ["a", "b", "c", "d"]:
        attempt(client, name, "guess", ip="10.9.9.9")

    assert attempt(client, "bob", PASSWORD, ip="10.9.9.9").status_code == 429
    assert attempt(client, "bob", PASSWORD, ip="10.1.1.1").status_code == 302


def test_failures_older_than_the_window_no_longer_count(client, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 2
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 0
    make_user("carol")
    attempt(client, "carol", "guess")
    attempt(client, "carol", "guess")

    assert attempt(client, "carol", PASSWORD).status_code == 302


@pytest.mark.parametrize("spelling", ["alice ", " alice", "Alice", "ALICE ", "\uff41lice"])
def test_another_spelling_of_the_username_shares_its_throttle(client, settings, spelling):
    settings.LOGIN_FAILURES_PER_USERNAME = 2
    make_user("alice")
    attempt(client, spelling, "guess")
    attempt(client, "alice", "guess")

    assert attempt(client, "alice", PASSWORD).status_code == 429
    assert attempt(client, spelling, PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_admin_login_is_throttled_even_with_the_right_password(client, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    make_user("root", superuser=True)
    for _ in range(3):
        assert attempt(client, "root", "guess", url="admin:login").status_code == 200

    response = attempt(client, "root ", PASSWORD, url="admin:login")

    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert attempt(client, "root", PASSWORD).status_code == 429, "the console shares the count"


def test_every_failed_admin_login_is_in_the_audit_trail(client):
    make_user("root", superuser=True)
    make_user("outsider", staff=False)

    attempt(client, "root", "guess", ip="10.0.0.7", url="admin:login")
    attempt(client, "outsider", PASSWORD, ip="10.0.0.8", url="admin:login")

    failures = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).order_by("id")
    assert [(event.details, event.client_ip) for event in failures] == [
        ({"username": "root"}, "10.0.0.7"),
        ({"username": "outsider"}, "10.0.0.8"),
    ]
    assert "_auth_user_id" not in client.session


def test_the_admin_login_still_lets_staff_in(client):
    make_user("root", superuser=True)

    response = attempt(client, "root", PASSWORD, url="admin:login")

    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_every_form_needs_its_csrf_token(settings):
    from django.test import Client

    make_user("dave")
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(reverse("login"), {"username": "dave", "password": PASSWORD})

    assert response.status_code == 403
