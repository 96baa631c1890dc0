"""API tokens: shown once, stored as a hash, revocable; through the API, the shell and the admin."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import PASSWORD, make_user, make_user_with_role
from upserts import roles
from upserts.models import ApiToken, AuditAction, AuditEvent
from upserts.services.api_tokens import create_api_token

pytestmark = pytest.mark.django_db


def with_key(key: str, keyword: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    return client


def test_a_new_token_shows_its_key_once_and_only_its_hash_is_kept(client):
    user = make_user_with_role("alice", roles.VIEWERS)
    client.force_login(user)

    created = client.post(
        "/api/v1/tokens/", {"name": "nightly-sync"}, content_type="application/json"
    )
    key = created.json()["key"]

    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    assert key.startswith("uc_") and len(key) > 40
    token = ApiToken.objects.get()
    assert created.json()["prefix"] == token.prefix == key[:11]
    assert key not in str(list(ApiToken.objects.values_list()))
    listing = client.get("/api/v1/tokens/")
    detail = client.get(created["Location"])
    for later in (listing, detail):
        assert later.status_code == 200 and key not in later.content.decode()
        assert '"key"' not in later.content.decode()
    assert listing.json()["results"][0]["name"] == "nightly-sync"
    [event] = AuditEvent.objects.filter(action=AuditAction.API_TOKEN_CREATED)
    assert event.actor_username == "alice" and key not in str(event.details)


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "bearer"])
def test_the_key_authenticates_with_either_keyword(keyword):
    key = create_api_token(user=make_user_with_role("bot", roles.VIEWERS), name="ci").key

    response = with_key(key, keyword).get("/api/v1/jobs/")

    assert response.status_code == 200


def test_a_revoked_token_is_refused_with_401(client):
    user = make_user_with_role("alice", roles.VIEWERS)
    issued = create_api_token(user=user, name="laptop")
    scripted = with_key(issued.key)
    assert scripted.get("/api/v1/jobs/").status_code == 200

    revoked = scripted.delete(f"/api/v1/tokens/{issued.token.pk}/")
    after = scripted.get("/api/v1/jobs/")

    assert revoked.status_code == 204
    assert after.status_code == 401 and after["WWW-Authenticate"] == 'Token realm="api"'
    assert after.json()["code"] == "authentication_failed"
    assert "revoked" in after.json()["message"]
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REVOKED).count() == 1


@pytest.mark.parametrize(
    "header",
    ["Bearer uc_not-a-real-key", "Bearer", "Token a b", "Bearer not-our-kind-of-key"],
)
def test_unknown_or_malformed_tokens_are_refused_with_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/v1/jobs/")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_token_of_a_disabled_account_is_refused():
    user = make_user_with_role("gone", roles.VIEWERS)
    key = create_api_token(user=user, name="old").key
    user.is_active = False
    user.save()

    response = with_key(key).get("/api/v1/jobs/")

    assert response.status_code == 401 and "disabled" in response.json()["message"]


def test_nobody_sees_or_revokes_another_users_tokens():
    alice_token = create_api_token(user=make_user("alice"), name="alice's").token
    bob = with_key(create_api_token(user=make_user("bob"), name="bob's").key)

    assert bob.get(f"/api/v1/tokens/{alice_token.pk}/").status_code == 404
    assert bob.delete(f"/api/v1/tokens/{alice_token.pk}/").status_code == 404
    assert [t["name"] for t in bob.get("/api/v1/tokens/").json()["results"]] == ["bob's"]
    alice_token.refresh_from_db()
    assert alice_token.revoked_at is None


def test_last_use_is_written_at_most_once_a_minute(django_assert_num_queries):
    issued = create_api_token(user=make_user(superuser=True), name="poller")
    client = with_key(issued.key)

    client.get("/api/v1/tokens/")
    first_use = ApiToken.objects.get().last_used_at
    with django_assert_num_queries(1 + 2):  # token, count, page: no UPDATE
        client.get("/api/v1/tokens/")
    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    with django_assert_num_queries(1 + 1 + 2):  # and now one UPDATE
        client.get("/api/v1/tokens/")

    assert first_use is not None and ApiToken.objects.get().last_used_at > first_use


def test_the_session_works_too_and_its_writes_need_the_csrf_token():
    make_user_with_role("alice", roles.OPERATORS)
    browser = APIClient(enforce_csrf_checks=True)
    browser.login(username="alice", password=PASSWORD)

    read = browser.get("/api/v1/jobs/")
    write = browser.post("/api/v1/tokens/", {"name": "x"}, format="json")

    assert read.status_code == 200
    assert write.status_code == 403 and "CSRF" in write.json()["message"]


def test_management_command_creates_lists_and_revokes_tokens(capsys):
    make_user("alice")

    call_command("api_token", "create", "alice", "--name", "backup")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    prefix = ApiToken.objects.get().prefix
    assert with_key(key).get("/api/v1/tokens/").status_code == 200

    call_command("api_token", "list", "alice")
    listed = capsys.readouterr().out
    assert prefix in listed and "backup" in listed and "active" in listed
    assert key not in listed

    call_command("api_token", "revoke", prefix)
    assert "Revoked" in capsys.readouterr().out
    assert with_key(key).get("/api/v1/tokens/").status_code == 401


def test_admin_lists_tokens_without_their_hash_and_cannot_add_them(client):
    admin = make_user("root", superuser=True)
    token = create_api_token(user=admin, name="ci").token
    client.force_login(admin)

    listing = client.get("/admin/upserts/apitoken/")
    change = client.get(f"/admin/upserts/apitoken/{token.pk}/change/")
    add = client.get("/admin/upserts/apitoken/add/")

    assert listing.status_code == 200 and token.prefix in listing.content.decode()
    assert change.status_code == 200
    for page in (listing, change):
        assert token.key_hash not in page.content.decode()
    assert add.status_code == 403


def test_admin_action_revokes_tokens(client):
    admin = make_user("root", superuser=True)
    issued = create_api_token(user=admin, name="ci")
    client.force_login(admin)

    client.post(
        "/admin/upserts/apitoken/",
        {"action": "revoke", "_selected_action": [issued.token.pk]},
    )

    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert with_key(issued.key).get("/api/v1/tokens/").status_code == 401
