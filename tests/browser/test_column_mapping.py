"""A file whose column names are not the collection's, fixed in the preview in a real browser."""

import json
import re

import pytest

from tests.browser.pages import Screenshots, log_in
from tests.factories import BOOK_FIELDS, book, make_cluster, make_user_with_role
from tests.helpers import query
from upserts import roles
from upserts.models import JobStatus, UpsertJob

pytestmark = [pytest.mark.milvus, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_renamed_column_is_mapped_and_an_extra_one_left_out_in_the_preview(
    page, live_server, celery_worker, milvus, make_collection, tmp_path
):
    from playwright.sync_api import expect

    screenshot = Screenshots("mapping")
    books = make_collection(BOOK_FIELDS, enable_dynamic_field=False)
    cluster = make_cluster("embedded-milvus", base_url=milvus.url)
    make_user_with_role("ada", roles.OPERATORS)
    export = tmp_path / "export.csv"
    lines = ["book_id,name,emb,notes"]
    for row in (book(i) for i in range(1, 31)):
        lines.append(f'{row["book_id"]},{row["title"]},"{json.dumps(row["emb"])}",scanned')
    export.write_text("\n".join(lines) + "\n")
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/clusters/{cluster.pk}/collections/{books}/")
    page.click("text=Upload into this collection")
    page.set_input_files("#id_file", str(export))
    page.click("button:has-text('Upload and preview')")
    page.wait_for_url(re.compile(r"/uploads/\d+/preview/"))

    # As uploaded, `name` fills no field and `notes` is not one: every row fails.
    mapping = page.locator("#column-mapping")
    expect(mapping.locator("label")).to_have_text(["book_id", "name", "emb", "notes"])
    expect(page.locator("tr.invalid")).to_have_count(20)
    expect(page.locator("#preview-body")).to_contain_text("No column fills title")
    screenshot(page, "before")

    page.select_option("#id_column_1", "title")
    expect(page.locator("#preview-body")).not_to_contain_text("No column fills title")
    page.select_option("#id_column_3", "-")
    expect(page.locator("#preview-body")).to_contain_text("Every row shown fits the collection.")
    expect(page.locator("#id_column_1")).to_have_value("title")
    expect(page.locator("#id_column_3")).to_have_value("-")
    screenshot(page, "mapped")

    page.click("button:has-text('Start job')")
    job = UpsertJob.objects.get()
    expect(page).to_have_url(re.compile(rf"/jobs/{job.pk}/$"))
    expect(page.locator("#column-mapping")).to_contain_text("name → title")
    expect(page.locator("#column-mapping")).to_contain_text("notes: left out")
    expect(page.locator(".badge.succeeded").first).to_be_visible(timeout=60_000)

    job.refresh_from_db()
    assert (job.status, job.rows_upserted, job.rows_failed) == (JobStatus.SUCCEEDED, 30, 0)
    stored = query(milvus, books, "book_id > 0", ["book_id", "title"], count=30)
    assert stored[4]["title"] == "Book 5"
