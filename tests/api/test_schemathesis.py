"""Schemathesis against the API's own schema, in process, authenticated by a real API token.

Every operation gets generated requests, valid and invalid, with the path's ids both random
and pinned to real objects. No answer may be a server error or break the schema. The cluster
test and collections endpoints are left out: they talk to a cluster by design, and their 502
for a cluster that does not answer is tested in test_clusters.py. Submitting a job asks the
cluster to describe its collection, so every cluster client is pointed at a fake collection;
the run fails if anything asks it more than that.
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from console.wsgi import application
from tests.factories import make_cluster, make_job, make_user
from tests.milvus.fake_cluster import FakeCluster
from tests.milvus.fake_collection import FakeCollection
from upserts.milvus.client import ClusterClient, ClusterConfig
from upserts.models import BatchStatus, FailedRow, JobStatus, ResumableUpload, UpsertBatch
from upserts.services.api_tokens import create_api_token

pytestmark = pytest.mark.django_db

NETWORK_PATHS = r"^/api/v1/clusters/\{id\}/(test|collections)"
EXAMPLES_PER_MODE = 20


@pytest.fixture
def one_database_transaction() -> Iterator[None]:
    """Keep Django from closing the test's connection after each in-process request, as its
    own test client does; the whole run stays inside the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def clusters_reach_only_a_fake(monkeypatch, fake_cluster) -> FakeCluster:
    FakeCollection().serve(fake_cluster)

    def to_the_fake(cluster: Any) -> ClusterClient:
        # The fake answers REST: a generated gRPC cluster is reached through its v1 API.
        api_version = "v1" if cluster.api_version == "grpc" else cluster.api_version
        return ClusterClient(ClusterConfig(base_url=fake_cluster.url, api_version=api_version))

    monkeypatch.setattr("upserts.services.clusters.client_for", to_the_fake)
    return fake_cluster


def test_generated_requests_get_no_server_error_and_answers_that_fit_the_schema(
    settings, tmp_path, one_database_transaction, clusters_reach_only_a_fake
):
    settings.MEDIA_ROOT = tmp_path
    user = make_user("root", superuser=True)
    headers = {"Authorization": f"Bearer {create_api_token(user=user, name='schemathesis').key}"}
    cluster = make_cluster("closed", base_url="http://127.0.0.1:9")
    job = make_job(cluster, status=JobStatus.PARTIALLY_FAILED, rows_failed=1)
    UpsertBatch.objects.create(
        job=job, sequence=1, first_row=1, last_row=2, row_count=2, status=BatchStatus.SUCCEEDED
    )
    FailedRow.objects.create(job=job, row_number=2, reason="bad", entity={"book_id": 2})
    # Tokens are revoked by another account, so that the run's own token stays valid.
    revoker = make_user("revoker", superuser=True)
    revoker_headers = {
        "Authorization": f"Bearer {create_api_token(user=revoker, name='revoking').key}"
    }
    spare_token = create_api_token(user=revoker, name="to revoke").token
    upload = ResumableUpload.objects.create(
        created_by=user,
        filename="books.jsonl",
        length=10,
        storage_name="resumable/schemathesis.jsonl",
        expires_at=timezone.now() + timedelta(days=1),
    )
    real_ids = {
        "jobs": job.pk,
        "clusters": cluster.pk,
        "tokens": spare_token.pk,
        "uploads": upload.pk,
    }

    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", application, headers=headers
    ).exclude(path_regex=NETWORK_PATHS)

    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        resource = operation.path.removeprefix("/api/v1/").split("/")[0]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            if mode is GenerationMode.POSITIVE and "{id}" in operation.path:
                pinned = operation.as_strategy(
                    generation_mode=mode, path_parameters={"id": real_ids[resource]}
                )
                strategy = st.one_of(strategy, pinned)
            if mode is GenerationMode.POSITIVE and operation.label == "POST /api/v1/jobs/":
                strategy = st.one_of(strategy, strategy.map(_to_real_cluster(cluster.pk)))
            revokes = operation.label == "DELETE /api/v1/tokens/{id}/"
            try:
                _exercise(strategy, revoker_headers if revokes else headers)
            except Exception as exc:  # noqa: BLE001 - gathered, then reported together
                failures.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}):\n{exc}"
                )

    assert not failures, "\n\n".join(failures)
    asked = {request.path for request in clusters_reach_only_a_fake.requests}
    assert asked <= {"/v1/vector/collections/describe", "/v2/vectordb/collections/describe"}


def _to_real_cluster(pk: int):
    """Send a small readable file to the real cluster, so that uploads get through too."""

    def pin(case: schemathesis.Case) -> schemathesis.Case:
        case.body = {**case.body, "cluster": pk, "file": b'{"book_id": 1}\n'}
        return case

    return pin


def _exercise(strategy: st.SearchStrategy, headers: dict[str, str]) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()
