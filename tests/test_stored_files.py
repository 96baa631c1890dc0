"""A stored upload never outlives a job that was not created: removed on rollback, and found
and removed later when the process died before it could clean up."""

import io
import os
import time

import pytest

from console import celery_app
from tests.factories import make_cluster, make_job
from upserts import tasks
from upserts.models import AuditEvent, UpsertJob
from upserts.services import uploads
from upserts.services.stored_files import remove_orphan_uploads

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def stored(media) -> list[str]:
    folder = media / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_job_rolled_back_after_its_file_was_stored_leaves_no_file(media, monkeypatch):
    def audit_fails(**kwargs):
        assert stored(media), "the file is stored before the transaction ends"
        raise RuntimeError("the audit insert failed")

    monkeypatch.setattr(uploads, "record_event", audit_fails)

    with pytest.raises(RuntimeError, match="audit insert failed"):
        uploads.create_job(
            source=io.BytesIO(b'{"id": 1}\n'),
            filename="rows.jsonl",
            cluster=make_cluster(),
            collection_name="books",
        )

    assert not UpsertJob.objects.exists() and not AuditEvent.objects.exists()
    assert stored(media) == []


def test_an_orphan_is_removed_once_past_the_grace_period_and_a_jobs_file_never(media):
    job = make_job(content=b'{"id": 1}\n')
    folder = media / "uploads"
    (folder / "orphan-old.jsonl").write_bytes(b"{}\n")
    (folder / "orphan-new.jsonl").write_bytes(b"{}\n")
    an_hour_ago = time.time() - 3600
    for name in ("orphan-old.jsonl", job.source_file.name.split("/")[-1]):
        os.utime(folder / name, (an_hour_ago, an_hour_ago))

    removed = remove_orphan_uploads(grace_seconds=600)

    assert removed == ["uploads/orphan-old.jsonl"]
    assert stored(media) == sorted([job.source_file.name.split("/")[-1], "orphan-new.jsonl"])
    job.refresh_from_db()
    assert job.source_file.read() == b'{"id": 1}\n'


def test_nothing_stored_yet_is_nothing_to_remove(media):
    assert remove_orphan_uploads(grace_seconds=0) == []


def test_celery_beat_removes_orphans_hourly():
    entry = celery_app.conf.beat_schedule["remove-orphan-uploads"]

    assert entry == {"task": tasks.remove_orphan_uploads.name, "schedule": 3600.0}
