"""The real parts the suite stands on work end to end."""

import uuid

import pytest
import requests

from tests.helpers import wait_until
from upserts.models import WorkerHeartbeat
from upserts.tasks import record_worker_heartbeat


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_task_sent_through_redis_runs_in_worker_process_and_writes_to_database(celery_worker):
    nonce = uuid.uuid4().hex

    record_worker_heartbeat.delay(nonce)

    heartbeat = wait_until(lambda: WorkerHeartbeat.objects.filter(nonce=nonce).first(), timeout=30)
    assert heartbeat.hostname
    assert celery_worker.process.poll() is None


@pytest.mark.milvus
def test_embedded_milvus_serves_rest_and_holds_a_non_autoid_collection(milvus, make_collection):
    name = make_collection(
        [
            {"name": "id", "type": "INT64", "is_primary": True},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
        ]
    )

    answer = requests.get(
        f"{milvus.url}/v1/vector/collections/describe",
        params={"collectionName": name},
        timeout=10,
    ).json()

    assert answer["code"] == 200
    primary = next(f for f in answer["data"]["fields"] if f["primaryKey"])
    assert primary == {**primary, "name": "id", "type": "Int64", "autoId": False}
