"""The preview reads a bounded prefix of the file, however far into it the first rows are."""

import gzip

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import make_cluster, make_job, make_user
from upserts.preview import preview_job

pytestmark = pytest.mark.django_db


def test_rows_behind_a_flood_of_blank_lines_are_not_hunted_for(settings):
    settings.UPLOAD_ESTIMATE_READ_BYTES = 1024 * 1024
    text = b"id,title\n1,a\n2,b\n" + b"\n" * (50 * 1024 * 1024) + b"3,c\n"
    job = make_job(
        make_cluster(base_url="http://127.0.0.1:9"),
        content=gzip.compress(text),
        original_filename="rows.csv.gz",
        file_format="csv",
        is_gzipped=True,
    )

    preview = preview_job(job)

    assert [row.number for row in preview.rows] == [1, 2]
    assert preview.file_error == ""
    assert any("Only the first 1,048,576 bytes" in warning for warning in preview.warnings)


def test_the_preview_unpacks_meta_and_reads_vectors_given_as_json_text(books_cluster):
    rows = (
        b'{"book_id": 1, "title": "a", "emb": "[0.5, 0.5, 0.5, 0.5]", "$meta": {"colour": "red"}}\n'
        b'{"book_id": 2, "title": "b", "emb": [0.5, 0.5, 0.5, 0.5], "$meta": "[1, 2]"}\n'
    )
    job = make_job(
        books_cluster,
        content=rows,
        original_filename="books.jsonl",
        file_format="jsonl",
        collection_name="books",
    )

    first, second = preview_job(job).rows

    assert first.is_valid and first.values["colour"] == "red" and "$meta" not in first.values
    assert second.problems == {"$meta": ["field `$meta` holds list, not a JSON object of fields"]}


def test_the_preview_says_what_milvus_stores_for_a_field_a_row_leaves_out(fake_cluster):
    from tests.milvus.fake_collection import BOOKS_FIELDS_V2, FakeCollection

    FakeCollection(
        fields_v2=[
            *BOOKS_FIELDS_V2,
            {"name": "year", "type": "Int64", "defaultValue": {"Data": {"LongData": 1999}}},
            {"name": "rank", "type": "Int32", "nullable": True},
        ]
    ).serve(fake_cluster, api="v2")
    cluster = make_cluster(base_url=fake_cluster.url, api_version="v2")
    job = make_job(
        cluster,
        content=b'{"book_id": 1, "title": "a", "emb": [0.5, 0.5, 0.5, 0.5]}\n',
        original_filename="books.jsonl",
        file_format="jsonl",
        collection_name="books",
    )

    preview = preview_job(job)

    [row] = preview.rows
    assert row.is_valid, row.problems
    assert preview.optional_fields == [("year", "its default, 1999"), ("rank", "null")]
    web = Client()
    web.force_login(make_user(superuser=True))
    page = web.get(reverse("upload_preview", args=[job.pk])).content.decode()
    assert "A row may leave out <code>year</code> (Milvus stores its default, 1999)," in page


def test_a_partial_updates_preview_says_which_fields_change_and_which_are_kept(fake_cluster):
    from tests.milvus.fake_collection import FakeCollection

    FakeCollection().serve(fake_cluster, api="v2")
    cluster = make_cluster(base_url=fake_cluster.url, api_version="v2", server_version="v2.6.4")
    job = make_job(
        cluster,
        content=b'{"book_id": 1, "title": "Renamed"}\n',
        original_filename="books.jsonl",
        file_format="jsonl",
        collection_name="books",
        partial_update=True,
    )

    preview = preview_job(job)

    [row] = preview.rows
    assert row.is_valid, row.problems  # no field but the key is required
    assert preview.partial_fields == (["title"], ["emb"])
    web = Client()
    web.force_login(make_user(superuser=True))
    page = web.get(reverse("upload_preview", args=[job.pk])).content.decode()
    assert "the rows change <code>title</code>; the entities keep <code>emb</code>." in page
