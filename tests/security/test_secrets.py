"""A cluster token never leaves the database in clear: not in errors, logs, the audit trail,
job messages or the raw row."""

import io
import logging

import orjson
import pytest
from django.db import connection

from tests.factories import book
from tests.milvus.fake_cluster import FakeCluster
from upserts.models import AuditEvent, ClusterEndpoint, UpsertJob
from upserts.services.clusters import check_connection, update_cluster
from upserts.services.pipeline import run_job_slice
from upserts.services.uploads import create_job

pytestmark = pytest.mark.django_db

TOKEN = "db_admin:Very-Secret-Token-7f3a9c"


@pytest.fixture
def fake():
    cluster = FakeCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


def everything_said(caplog) -> str:
    jobs = " ".join(UpsertJob.objects.values_list("error_message", flat=True))
    audit = " ".join(
        orjson.dumps(e.details).decode() + e.target_repr for e in AuditEvent.objects.all()
    )
    return "\n".join([caplog.text, jobs, audit])


def test_token_stays_secret_when_the_cluster_refuses_it(fake, caplog, settings):
    settings.UPSERT_RETRY_ATTEMPTS = 1
    caplog.set_level(logging.DEBUG)
    echo = {"code": 1800, "message": f"invalid token: Bearer {TOKEN}"}
    fake.answer("/v1/vector/collections", method="GET", status=401, json_body=echo)
    fake.answer("/v1/vector/collections/describe", method="GET", status=401, json_body=echo)
    cluster = ClusterEndpoint.objects.create(name="secret", base_url=fake.url, token=TOKEN)

    result = check_connection(cluster)
    job = create_job(
        source=io.BytesIO(orjson.dumps(book(1))),
        filename="a.json",
        cluster=cluster,
        collection_name="books",
    )
    run_job_slice(job.pk)

    assert not result.ok and TOKEN not in result.error
    assert fake.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in everything_said(caplog)
    assert "Very-Secret" not in everything_said(caplog)


def test_token_stays_secret_when_the_cluster_cannot_be_reached(caplog, settings):
    settings.UPSERT_RETRY_ATTEMPTS = 1
    caplog.set_level(logging.DEBUG)
    cluster = ClusterEndpoint.objects.create(
        name="closed", base_url=f"http://{TOKEN.replace(':', '-')}.invalid:1", token=TOKEN
    )

    result = check_connection(cluster)

    assert not result.ok
    assert TOKEN not in result.error and TOKEN not in everything_said(caplog)


def test_changing_a_token_is_audited_without_the_token(fake):
    cluster = ClusterEndpoint.objects.create(name="c", base_url=fake.url, token="old-secret-1")

    update_cluster(cluster, token=TOKEN)

    event = AuditEvent.objects.get(action="cluster.updated")
    assert event.details["token_changed"] is True
    assert TOKEN not in orjson.dumps(event.details).decode()
    assert "old-secret-1" not in orjson.dumps(event.details).decode()


def test_the_raw_database_row_holds_no_token():
    cluster = ClusterEndpoint.objects.create(name="raw", base_url="http://x:1", token=TOKEN)

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM upserts_clusterendpoint WHERE id = %s", [cluster.pk])
        row = " ".join(map(str, cursor.fetchone()))

    assert TOKEN not in row and "Very-Secret" not in row
