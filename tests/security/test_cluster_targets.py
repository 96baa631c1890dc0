"""Where a cluster may point and what its token may hold, checked when it is saved (by the
services, the console's form, the API and the admin alike) and again when it is used."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import make_cluster, make_job, make_user, make_user_with_role
from tests.helpers import PROJECT_DIR
from upserts import roles
from upserts.models import ClusterEndpoint, JobStatus
from upserts.services.clusters import check_connection, create_cluster, update_cluster
from upserts.services.pipeline import run_job_slice

pytestmark = pytest.mark.django_db

METADATA_URL = "http://169.254.169.254"
BAD_TOKENS = [
    pytest.param("db_admin:s3cret\nInjected: header", "a line break", id="newline"),
    pytest.param("db_admin:s3cret\x00rest", "a control character", id="nul"),
    pytest.param("db_admin:s3crét-Pa55", "a character outside ASCII", id="non-ascii"),
]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def cluster_admin() -> Client:
    client = Client()
    client.force_login(make_user_with_role("cluster_admin", roles.CLUSTER_ADMINS))
    return client


@pytest.fixture
def cluster_admin_api() -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user_with_role("cluster_admin", roles.CLUSTER_ADMINS))
    return client


@pytest.fixture
def superuser() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def refusal(field: str, **cluster: str) -> str:
    with pytest.raises(ValidationError) as caught:
        create_cluster(name="east", **cluster)
    assert not ClusterEndpoint.objects.filter(name="east").exists()
    return " ".join(caught.value.message_dict[field])


def cluster_form(**overrides: str) -> dict[str, str]:
    return {
        "name": "east",
        "base_url": "http://127.0.0.1:19530",
        "api_version": "v1",
        "default_database": "default",
        "verify_tls": "on",
        "request_timeout_seconds": "30",
        "is_enabled": "on",
        "token": "",
        **overrides,
    }


# -- networks, when saved ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (METADATA_URL, "169.254.169.254 is in 169.254.0.0/16"),
        ("http://[fd00:ec2::254]", "fd00:ec2::254 is in fd00:ec2::254/128"),
        ("http://100.100.100.200:80", "100.100.100.200 is in 100.100.100.200/32"),
    ],
)
def test_a_cloud_metadata_address_is_refused_as_a_cluster(url, said):
    message = refusal("base_url", base_url=url)

    assert said in message and "CLUSTER_DENIED_NETWORKS" in message


def test_a_host_name_is_judged_by_the_addresses_it_resolves_to(settings):
    settings.CLUSTER_DENIED_NETWORKS = ["127.0.0.0/8", "::1/128"]

    message = refusal("base_url", base_url="http://localhost:19530")

    assert "localhost resolves to" in message and "a network the console does not connect to" in (
        message
    )


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:19530", "http://10.0.0.5:19530", "http://milvus.invalid:19530"]
)
def test_private_loopback_and_not_yet_resolvable_hosts_are_accepted(url):
    assert create_cluster(name="east", base_url=url).base_url == url


def test_an_allow_list_refuses_every_address_outside_it(settings):
    settings.CLUSTER_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert create_cluster(name="inside", base_url="http://10.1.2.3:19530")
    message = refusal("base_url", base_url="http://127.0.0.1:19530")
    assert "127.0.0.1 is outside the networks the console connects to (10.0.0.0/8)" in message


def test_a_cluster_cannot_be_moved_into_a_denied_network():
    cluster = make_cluster("east")

    with pytest.raises(ValidationError) as caught:
        update_cluster(cluster, base_url=METADATA_URL)

    assert "169.254.0.0/16" in " ".join(caught.value.message_dict["base_url"])
    assert ClusterEndpoint.objects.get(pk=cluster.pk).base_url == "http://127.0.0.1:19530"


def test_the_console_form_shows_the_refusal_on_the_base_url(cluster_admin):
    response = cluster_admin.post(reverse("cluster_create"), cluster_form(base_url=METADATA_URL))

    assert response.status_code == 200
    assert "169.254.0.0/16" in " ".join(response.context["form"].errors["base_url"])
    assert not ClusterEndpoint.objects.exists()


def test_the_api_answers_400_on_the_base_url(cluster_admin_api):
    response = cluster_admin_api.post(
        "/api/v1/clusters/", {"name": "east", "base_url": METADATA_URL}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "169.254.0.0/16" in " ".join(response.json()["details"]["base_url"])
    assert not ClusterEndpoint.objects.exists()


def test_the_admin_shows_the_refusal_on_the_base_url(superuser):
    response = superuser.post(
        reverse("admin:upserts_clusterendpoint_add"), cluster_form(base_url=METADATA_URL)
    )

    assert response.status_code == 200
    assert "169.254.0.0/16" in " ".join(response.context["adminform"].form.errors["base_url"])
    assert not ClusterEndpoint.objects.exists()


def test_a_network_setting_that_cannot_be_read_stops_the_console_at_start():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env={**os.environ, "CLUSTER_DENIED_NETWORKS": "169.254.0.0/16,not-a-network"},
        capture_output=True,
        text=True,
    )

    assert result.returncode != 0
    assert "CLUSTER_DENIED_NETWORKS: 'not-a-network' is not a network" in result.stderr


# -- networks, when used ----------------------------------------------------------------------


def test_a_saved_cluster_in_a_network_denied_since_is_refused_when_tested(fake_cluster, settings):
    cluster = create_cluster(name="east", base_url=fake_cluster.url)
    settings.CLUSTER_DENIED_NETWORKS = ["127.0.0.0/8"]

    result = check_connection(cluster)

    assert not result.ok
    assert "127.0.0.1 is in 127.0.0.0/8" in result.error
    assert fake_cluster.requests == []


def test_the_size_limit_comes_from_the_settings(fake_cluster, settings):
    settings.CLUSTER_MAX_RESPONSE_BYTES = 1024
    fake_cluster.answer("/v1/vector/collections", method="GET", body=b" " * 4096)
    cluster = create_cluster(name="east", base_url=fake_cluster.url)

    result = check_connection(cluster)

    assert not result.ok and "larger than 1,024 bytes" in result.error


# -- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "problem"), BAD_TOKENS)
def test_a_token_a_header_cannot_carry_is_refused_without_echoing_it(token, problem):
    message = refusal("token", base_url="http://127.0.0.1:19530", token=token)

    assert problem in message and "HTTP header" in message
    assert "s3cr" not in message


# DRF's own CharField already refuses a NUL ("Null characters are not allowed.").
@pytest.mark.parametrize(("token", "problem"), [BAD_TOKENS[0], BAD_TOKENS[2]])
def test_the_api_refuses_such_a_token_on_its_field(cluster_admin_api, token, problem):
    response = cluster_admin_api.post(
        "/api/v1/clusters/",
        {"name": "east", "base_url": "http://127.0.0.1:19530", "token": token},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert problem in " ".join(response.json()["details"]["token"])
    assert "s3cr" not in response.content.decode()
    assert not ClusterEndpoint.objects.exists()


def test_the_console_form_refuses_such_a_token(cluster_admin):
    response = cluster_admin.post(
        reverse("cluster_create"), cluster_form(token="db_admin:s3cret\nX-Other: 1")
    )

    assert response.status_code == 200
    assert "a line break, which an HTTP header cannot carry" in response.content.decode()
    assert "s3cret" not in response.content.decode()
    assert not ClusterEndpoint.objects.exists()


def test_the_admin_refuses_such_a_token_on_its_field(superuser):
    response = superuser.post(
        reverse("admin:upserts_clusterendpoint_add"), cluster_form(token="db_admin:s3crét")
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["token"]
    assert "a character outside ASCII" in " ".join(errors)
    assert "s3cr" not in response.content.decode()
    assert not ClusterEndpoint.objects.exists()


def test_a_token_with_a_space_inside_is_accepted():
    cluster = create_cluster(name="east", base_url="http://127.0.0.1:19530", token="user:pass word")

    assert cluster.token == "user:pass word"


def test_a_stored_token_a_header_cannot_carry_fails_the_test_and_the_job(fake_cluster):
    # Saved before tokens were checked: nothing validates a plain create.
    cluster = ClusterEndpoint.objects.create(
        name="old", base_url=fake_cluster.url, token="db_admin:s3cret\nrest"
    )

    result = check_connection(cluster)
    job = make_job(cluster)
    run_job_slice(job.pk)
    job.refresh_from_db()

    assert not result.ok and "a line break" in result.error and "s3cret" not in result.error
    assert job.status == JobStatus.FAILED
    assert "a line break" in job.error_message and "s3cret" not in job.error_message
    assert fake_cluster.requests == []
