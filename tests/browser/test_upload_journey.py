"""A file's way through the console in a real browser: upload, preview, the running job,
the failed rows, the jobs list, the audit trail and the entity lookup."""

import json
import re

import pytest

from tests.browser.pages import Screenshots, log_in
from tests.factories import BOOK_FIELDS, book, make_cluster, make_user_with_role
from tests.helpers import query
from upserts import roles
from upserts.models import JobStatus, UpsertJob

pytestmark = [
    pytest.mark.milvus,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

ROWS = 3000
BAD_ROW = 3  # its vector has 2 numbers where the collection wants 4


def _books_file(tmp_path):
    rows = [book(i) for i in range(1, ROWS + 1)]
    rows[BAD_ROW - 1]["emb"] = [0.1, 0.2]
    path = tmp_path / "books.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_an_operator_loads_a_file_and_follows_it_to_the_audit_trail(
    page, live_server, celery_worker, milvus, make_collection, tmp_path
):
    from playwright.sync_api import expect

    screenshot = Screenshots("flow")

    books = make_collection(BOOK_FIELDS)
    cluster = make_cluster("embedded-milvus", base_url=milvus.url)
    make_user_with_role("ada", roles.OPERATORS)
    books_file = _books_file(tmp_path)
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/clusters/{cluster.pk}/collections/{books}/")

    # Upload into the collection; a slow network shows the upload's progress bar moving.
    page.click("text=Upload into this collection")
    expect(page.locator("#id_collection_name")).to_have_value(books)
    page.fill("#id_batch_size", "100")
    page.set_input_files("#id_file", str(books_file))
    screenshot(page, "upload-form")
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 60_000},
    )
    page.click("button:has-text('Upload and preview')")
    expect(page.locator("#upload-status")).to_be_visible()
    # Sent in parts (tus): bytes sent, speed and time left as they go.
    expect(page.locator("#upload-progress-text")).to_contain_text(re.compile(r"Sent .* left"))
    screenshot(page, "upload-progress")
    page.wait_for_url(re.compile(r"/uploads/\d+/preview/"), timeout=60_000)
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )

    # The preview: format, row estimate, and the bad row's problem at its field.
    job = UpsertJob.objects.get()
    expect(page.locator(".facts")).to_contain_text("JSON Lines")
    expect(page.locator(".facts")).to_contain_text("about 3,000")
    bad_cell = page.locator("tr.invalid td.bad-cell")
    expect(bad_cell).to_have_count(1)
    expect(bad_cell).to_contain_text("field `emb`: expected 4 floats, got 2")
    screenshot(page, "preview")

    # Start, and watch the progress reach 100 % without reloading the page.
    page.click("button:has-text('Start job')")
    expect(page).to_have_url(re.compile(rf"/jobs/{job.pk}/$"))
    screenshot(page, "job-started")
    expect(page.locator("#job-live .percent")).to_have_text("100.0 %", timeout=120_000)
    expect(page.locator("#job-live .badge")).to_have_text("Partially failed")

    # The finished job: batches, the failure grouped by reason, the failed rows download.
    expect(page.locator("#batches tbody tr")).to_have_count(25)
    expect(page.locator("#batches")).to_contain_text("page 1 of 2")
    expect(page.get_by_text("Failures by reason")).to_be_visible()
    expect(page.locator("#job-live svg")).to_be_visible()
    screenshot(page, "job-finished")
    with page.expect_download() as download:
        page.click("text=Download failed rows")
    assert download.value.suggested_filename == f"job-{job.pk}-failed-rows.jsonl"
    failed = [json.loads(line) for line in download.value.path().read_text().splitlines()]
    assert [row["row_number"] for row in failed] == [BAD_ROW]

    batches = page.locator("#batches")
    batches.get_by_role("link", name="next ›").click()
    expect(batches).to_contain_text("page 2 of 2")
    expect(batches.locator("tbody tr")).to_have_count(5)
    expect(page.locator("#job-live .percent")).to_have_text("100.0 %")

    job.refresh_from_db()
    assert job.status == JobStatus.PARTIALLY_FAILED
    assert (job.rows_upserted, job.rows_failed) == (ROWS - 1, 1)
    landed = query(milvus, books, "book_id in [1, 2, 3, 4]", ["book_id"], count=3)
    assert [int(row["book_id"]) for row in landed] == [1, 2, 4]

    # The jobs list shows it finished.
    page.click("nav >> text=Jobs")
    row = page.locator("#job-table tbody tr").first
    expect(row).to_contain_text("books.jsonl")
    expect(row.locator(".badge")).to_have_text("Partially failed")
    screenshot(page, "jobs-list")

    # The audit trail: who uploaded the file and started the job, from where.
    page.click("nav >> text=Audit")
    page.fill("#id_q", "books.jsonl")
    page.click("button:has-text('Filter')")
    for action in ("File uploaded", "Job started"):
        event = page.locator("table.audit tbody tr", has_text=action)
        expect(event).to_contain_text("ada")
        expect(event).to_contain_text("127.0.0.1")
        expect(event).to_contain_text(job.sha256)
    screenshot(page, "audit")

    # Entity lookup: which job wrote book 7, when and by whom.
    page.click("text=Entity lookup")
    page.fill("#id_entity_id", "7")
    page.fill("#id_collection", books)
    page.click("button:has-text('Look up')")
    writes = page.locator("table tbody tr")
    expect(writes).to_have_count(1)
    expect(writes).to_contain_text(f"job {job.pk}")
    expect(writes).to_contain_text("ada")
    screenshot(page, "entity-lookup")


def test_a_file_that_cannot_be_read_is_explained_on_the_form(
    page, live_server, milvus, make_collection, tmp_path
):
    from playwright.sync_api import expect

    screenshot = Screenshots("refused")

    books = make_collection(BOOK_FIELDS)
    make_cluster("embedded-milvus", base_url=milvus.url)
    make_user_with_role("otto", roles.OPERATORS)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")

    log_in(page, live_server, "otto")
    page.click("nav >> text=New upload")
    # The collection picker becomes a list once the cluster has named its collections.
    page.locator("select#id_collection_name").select_option(books)
    page.set_input_files("#id_file", str(empty))
    page.click("button:has-text('Upload and preview')")

    expect(page.locator("#upload-form .alert.error")).to_have_text("empty.jsonl is empty.")
    expect(page).to_have_url(re.compile(r"/uploads/new/$"))
    screenshot(page, "upload-refused")
    assert not UpsertJob.objects.exists()
