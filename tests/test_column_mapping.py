"""A file's columns mapped to the collection's fields: the rules, the preview that offers
them, and each way in that takes them (the preview's form, the API)."""

import hashlib
import io
import json

import pytest

from tests.factories import make_job, make_user_with_role
from tests.helpers import log_in, page_text, token_client
from upserts import roles
from upserts.column_mapping import ColumnMapping, InvalidMapping
from upserts.milvus.schema import CollectionSchema, FieldSchema
from upserts.models import AuditAction, AuditEvent, JobStatus
from upserts.preparation import RefusedRow, RowPreparer
from upserts.preview import preview_job
from upserts.services.uploads import UploadRejected, set_column_mapping

BOOKS = CollectionSchema(
    name="books",
    fields=(
        FieldSchema("book_id", "Int64", is_primary=True),
        FieldSchema("title", "VarChar", max_length=64),
        FieldSchema("emb", "FloatVector", dim=4),
    ),
    enable_dynamic_field=True,
)
EXPORT_CSV = b'id,name,emb,notes\n1,One,"[0.5, 0.5, 0.5, 0.5]",x\n2,Two,"[0.5, 0.5]",y\n'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["id"], "an object of column: field"),
        ({"id": 7}, "Column `id` maps to 7: give a field name, or null"),
        ({"id": ""}, "Column `id` maps to ''"),
        ({"a": "title", "b": "title"}, "Several columns map to `title`"),
        ({"": "title"}, "is not a column name"),
    ],
)
def test_a_mapping_that_cannot_apply_says_why(data, message):
    with pytest.raises(InvalidMapping, match=message):
        ColumnMapping.from_json(data)


def test_a_mapping_renames_and_leaves_out_and_a_refused_row_gets_the_files_names_back():
    mapping = ColumnMapping.from_json(
        {"id": "book_id", "name": "title", "notes": None, "emb": "emb"}
    )
    assert mapping.to_json() == {"id": "book_id", "name": "title", "notes": None}
    preparer = RowPreparer(BOOKS, file_format="csv", mapping=mapping)

    good = preparer.prepare({"id": "1", "name": "One", "emb": "[1, 2, 3, 4]", "notes": "x"}, None)
    bad = preparer.prepare({"id": "2", "name": "Two", "emb": "[1, 2]", "notes": "y"}, None)

    assert good == (1, b'{"book_id":1,"title":"One","emb":[1, 2, 3, 4]}')
    assert isinstance(bad, RefusedRow)
    assert bad.reason == "field `emb`: expected 4 floats, got 2"
    assert bad.entity == {"id": 2, "name": "Two", "emb": [1, 2], "notes": "y"}
    assert mapping.described() == ["id → book_id", "name → title", "notes: left out"]


def test_two_columns_for_one_field_fail_the_row_at_that_field():
    preparer = RowPreparer(
        BOOKS, file_format="jsonl", mapping=ColumnMapping.from_json({"name": "title"})
    )

    refused = preparer.prepare({"book_id": 1, "title": "A", "name": "B", "emb": [1] * 4}, None)

    assert isinstance(refused, RefusedRow)
    assert [(p.field, p.code) for p in refused.problems] == [("title", "invalid_value")]
    assert "given by column `name` (mapped to it) and by a column of its own name" in (
        refused.reason
    )


def test_the_parquet_reader_is_told_the_files_names_for_vector_columns():
    mapping = ColumnMapping.from_json({"vector": "emb"})

    preparer = RowPreparer(BOOKS, file_format="parquet", mapping=mapping)

    assert preparer.number_vector_columns == frozenset({"vector"})


def export_job(cluster):
    return make_job(cluster, content=EXPORT_CSV, original_filename="export.csv", file_format="csv")


@pytest.mark.django_db
def test_the_preview_offers_each_column_matched_by_name_and_checks_again_with_the_mapping(
    books_cluster, client
):
    log_in(client, "operator")
    job = export_job(books_cluster)
    before = preview_job(job)
    assert [(c.column, c.target) for c in before.column_choices] == [
        ("id", ""),
        ("name", ""),
        ("emb", "emb"),
        ("notes", ""),
    ]
    assert before.unfilled_fields == ["book_id", "title"]
    assert before.invalid_rows == 2  # no book_id

    response = client.post(
        f"/uploads/{job.pk}/mapping/",
        {"column_0": "book_id", "column_1": "title", "column_2": "emb", "column_3": "-"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    text = page_text(response)
    assert text.lstrip().startswith('<div id="preview-body">')  # the partial htmx swaps in
    assert "1 of 2 rows would fail" in " ".join(text.split()).replace("</span>", "")
    job.refresh_from_db()
    assert job.column_mapping == {"id": "book_id", "name": "title", "notes": None}
    after = preview_job(job)
    assert [row.is_valid for row in after.rows] == [True, False]
    assert after.rows[0].values == {
        "book_id": "1",
        "title": "One",
        "emb": after.rows[0].values["emb"],
    }
    assert after.rows[1].problems == {"emb": ["field `emb`: expected 4 floats, got 2"]}


@pytest.mark.django_db
def test_a_mapping_to_no_field_of_the_collection_or_of_a_started_job_is_refused(books_cluster):
    job = export_job(books_cluster)

    with pytest.raises(UploadRejected, match="maps to `isbn`, which is not a field of books"):
        set_column_mapping(job, ColumnMapping.from_json({"id": "isbn"}))
    job.status = JobStatus.RUNNING
    job.save()
    with pytest.raises(UploadRejected, match="has started; its column mapping is fixed"):
        set_column_mapping(job, ColumnMapping.from_json({"id": "book_id"}))


@pytest.mark.django_db
def test_the_api_takes_a_mapping_and_a_dry_run_and_records_them(books_cluster):
    client = token_client(make_user_with_role("script", roles.OPERATORS))

    def submit(**fields):
        file = io.BytesIO(EXPORT_CSV)
        file.name = "export.csv"
        return client.post(
            "/api/v1/jobs/",
            {"file": file, "cluster": books_cluster.pk, "collection": "books", **fields},
            format="multipart",
        )

    accepted = submit(mapping=json.dumps({"id": "book_id", "name": "title"}), dry_run="true")
    not_an_object = submit(mapping="[1]")
    no_such_field = submit(mapping=json.dumps({"id": "isbn"}))

    assert accepted.status_code == 202, accepted.content
    body = accepted.json()
    assert body["mapping"] == {"id": "book_id", "name": "title"} and body["dry_run"] is True
    started = AuditEvent.objects.get(action=AuditAction.JOB_STARTED, target_id=str(body["id"]))
    assert started.details["mapping"] == {"id": "book_id", "name": "title"}
    assert started.details["dry_run"] is True
    assert not_an_object.status_code == 400
    assert "an object of column: field" in not_an_object.content.decode()
    assert no_such_field.status_code in (400, 422), no_such_field.content
    assert "not a field of books" in no_such_field.content.decode()


@pytest.mark.django_db
def test_a_check_of_the_whole_file_is_started_from_the_preview_and_its_page_offers_the_send(
    books_cluster, client
):
    log_in(client, "operator")
    job = export_job(books_cluster)
    set_column_mapping(job, ColumnMapping.from_json({"id": "book_id", "name": "title"}))

    started = client.post(f"/uploads/{job.pk}/check/")

    assert started.status_code == 302 and started.url == f"/jobs/{job.pk}/"
    job.refresh_from_db()
    assert job.dry_run
    event = AuditEvent.objects.get(action=AuditAction.JOB_STARTED, target_id=str(job.pk))
    assert event.details["dry_run"] is True
    # As the worker leaves it: one row of two failed the checks.
    job.status, job.rows_read, job.rows_failed = JobStatus.PARTIALLY_FAILED, 2, 1
    job.save()
    page = " ".join(page_text(client.get(f"/jobs/{job.pk}/")).split())
    assert "A check of the whole file" in page and "Send this file" in page
    assert "Retry failed rows" not in page
    assert "<code>id → book_id</code>, <code>name → title</code>" in page

    sent = client.post(f"/jobs/{job.pk}/send/")

    new = job.__class__.objects.exclude(pk=job.pk).get()
    assert sent.status_code == 302 and sent.url == f"/jobs/{new.pk}/"
    assert not new.dry_run and new.column_mapping == job.column_mapping
    assert new.sha256 == hashlib.sha256(EXPORT_CSV).hexdigest()
    assert new.original_filename == "export.csv"
