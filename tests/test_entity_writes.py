"""A batch's ids are stored exactly, one indexed row each, on SQLite and PostgreSQL alike."""

import pytest

from tests.factories import make_cluster, make_job
from upserts.models import BatchStatus, EntityWrite, UpsertBatch
from upserts.services.entity_writes import record_entity_writes

pytestmark = pytest.mark.django_db


def test_every_id_of_a_batch_is_stored_exactly_as_text():
    job = make_job(make_cluster())
    batch = UpsertBatch.objects.create(
        job=job, sequence=1, first_row=1, last_row=5, row_count=5, status=BatchStatus.SUCCEEDED
    )
    ids = ["1", 9007199254740993, "雪国", 'it\'s "quoted"', "x" * 512]

    record_entity_writes(job_id=job.pk, batch_id=batch.pk, entity_ids=ids)
    record_entity_writes(job_id=job.pk, batch_id=batch.pk, entity_ids=[])

    stored = EntityWrite.objects.filter(job=job, batch=batch).order_by("id")
    assert [write.entity_id for write in stored] == [str(entity_id) for entity_id in ids]
