"""Hostile files through the real upload form, preview and worker: each ends as expected, the
job reaches a final state, and neither process grows past its memory target.

The corpus is tests/data/hostile/ (made by make_corpus.py). Every file goes through gunicorn as
a person would send it (log in, upload on the form, open the preview, start), and the job runs
on the session's real Celery worker into the real Milvus. The web process's and the worker's
peak resident memory is read from the kernel afterwards (VmHWM), not inferred from timing.
"""

import re
import subprocess
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.factories import PASSWORD, make_user_with_role
from tests.faults.test_web_restart import WebServer
from tests.helpers import wait_until
from upserts import roles
from upserts.models import ClusterEndpoint, FailedRow, JobStatus, UpsertJob

pytestmark = [pytest.mark.milvus, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CORPUS = Path(__file__).resolve().parent.parent / "data" / "hostile"
HOSTILE_FIELDS = [
    {"name": "id", "type": "INT64", "is_primary": True},
    {"name": "title", "type": "VARCHAR", "max_length": 64},
    {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
]
WEB_PEAK_MB = 300
WORKER_PEAK_MB = 400

TOO_DEEP = "nested more than 64 levels deep, the limit for one row"
TOO_BIG = "more than 4,194,304 bytes, the limit for one row"


def refused(message: str) -> dict:
    return {"refused": message}


def stopped_at_preview(message: str) -> dict:
    """The upload is taken, but the preview shows why the file cannot be read and Start is
    refused."""
    return {"preview": message}


def breaks(message: str, landed: int) -> dict:
    """The file stops being readable part-way; the rows before the break land."""
    return {"status": JobStatus.FAILED, "error": message, "upserted": landed, "failed": {}}


def row_fails(row: int, message: str, rows: int = 5) -> dict:
    return {"status": JobStatus.PARTIALLY_FAILED, "upserted": rows - 1, "failed": {row: message}}


def every_row_fails(rows: int, message: str) -> dict:
    return {
        "status": JobStatus.FAILED,
        "error": "No row landed",
        "upserted": 0,
        "failed": dict.fromkeys(range(1, rows + 1), message),
    }


EXPECTED = {
    "deep_element.json.gz": row_fails(3, TOO_DEEP),
    "deep_only.json.gz": every_row_fails(1, TOO_DEEP),
    "huge_element.json.gz": row_fails(3, TOO_BIG),
    "giant_number.json.gz": breaks("hold no object or array", landed=1),
    "giant_string.json.gz": row_fails(3, TOO_BIG),
    "space_flood.json.gz": breaks("hold no object or array", landed=1),
    # yajl stops at an integer past 64 bits: the rows before it land, and the file says where.
    "big_integer.json": breaks("integer overflow", landed=2),
    "scalars.json.gz": every_row_fails(20_000, "is a number, not an object"),
    "deep_line.jsonl.gz": row_fails(3, TOO_DEEP),
    "nested_300.jsonl": row_fails(3, TOO_DEEP),
    "long_line.jsonl.gz": row_fails(3, TOO_BIG),
    "no_newlines.jsonl.gz": every_row_fails(1, TOO_BIG),
    "nul_in_text.jsonl": row_fails(3, "field `title`"),
    "lone_surrogate.jsonl": row_fails(3, "not valid JSON (no low surrogate in string)"),
    "long_failures.jsonl.gz": every_row_fails(20, "only its first 65,536 are kept"),
    "long_cell.csv.gz": row_fails(3, TOO_BIG),
    "unclosed_quote.csv.gz": breaks("a quote is probably left open there", landed=2),
    "deep_cell.csv": row_fails(3, TOO_DEEP),
    "wide_header.csv.gz": refused("the header row (line 1)"),
    # The upload step reads a bounded prefix: 200 MB of blank lines are not read to the end.
    "blank_flood.csv.gz": refused("the first 67,108,864 bytes hold no entity"),
    "wide_row.csv.gz": row_fails(3, "1,000,003 values, but the header has 3 columns"),
    "deep_list.parquet": refused("column `doc` is nested more than 64 levels deep"),
    "huge_cell.parquet": refused("decode to about"),
    "run_length_bomb.parquet": refused("decode to about"),
    # A thousand rows share a 1 MB dictionary value: decoded in slices, never all at once.
    "dictionary_bomb.parquet": {
        "status": JobStatus.FAILED,
        "error": "No row landed",
        "upserted": 0,
        "failed": {
            **dict.fromkeys(range(1, 1000), "field `title`"),
            1000: "row 1,000 decodes to 5,242,888 bytes",
        },
    },
    # The decoder process runs out of the memory it may use, not the web process.
    "hidden_cell.parquet": stopped_at_preview(
        "the Parquet data from its first row needs more than 268,435,456 bytes to decode"
    ),
    "zeros.jsonl.gz": refused("is binary data"),
    "gzip_in_gzip.jsonl.gz": refused("is binary data"),
}


def test_the_corpus_has_a_file_for_each_expectation():
    files = {path.name for path in CORPUS.iterdir() if path.suffix != ".py"}

    assert files == set(EXPECTED)
    assert len(files) >= 25


@pytest.fixture(scope="module")
def web(redis_url, celery_queue, celery_worker) -> WebServer:
    server = WebServer(Path(settings.MEDIA_ROOT), redis_url, queue=celery_queue).start()
    yield server
    if server.process is not None:
        server.kill()


def log_in(web) -> requests.Session:
    http = requests.Session()
    http.get(f"{web.url}/login/", timeout=10).raise_for_status()
    answer = http.post(
        f"{web.url}/login/",
        data={
            "username": "operator",
            "password": PASSWORD,
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
        },
        headers={"Referer": f"{web.url}/login/"},
        timeout=10,
    )
    assert answer.status_code == 200 and "/login/" not in answer.url, answer.text[:500]
    return http


def csrf_token(page: requests.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def upload_on_the_form(web, http, cluster, collection, name) -> requests.Response:
    page = http.get(f"{web.url}/uploads/new/", timeout=10)
    with (CORPUS / name).open("rb") as file:
        return http.post(
            f"{web.url}/uploads/new/",
            data={
                "csrfmiddlewaretoken": csrf_token(page),
                "cluster": str(cluster.pk),
                "collection_name": collection,
                "batch_size": "500",
                "max_in_flight": "2",
            },
            files={"file": (name, file)},
            headers={"Referer": f"{web.url}/uploads/new/"},
            allow_redirects=False,
            timeout=120,
        )


def outcome_problems(web, http, cluster, collection, name) -> list[str]:
    """What differs from the file's expected outcome (nothing, when it ends as it should)."""
    expected = EXPECTED[name]
    answer = upload_on_the_form(web, http, cluster, collection, name)
    if "refused" in expected:
        text = answer.text.replace("&#x27;", "'").replace("&quot;", '"')
        if answer.status_code != 200 or expected["refused"] not in text:
            return [f"not refused with {expected['refused']!r}: HTTP {answer.status_code}"]
        if UpsertJob.objects.filter(original_filename=name).exists():
            return ["refused, but a job was made"]
        return []
    if answer.status_code != 302:
        return [f"upload answered HTTP {answer.status_code}, not the preview"]
    job = UpsertJob.objects.get(original_filename=name)
    preview = http.get(f"{web.url}{answer.headers['Location']}", timeout=120)
    if preview.status_code != 200:
        return [f"preview answered HTTP {preview.status_code}"]
    started = http.post(
        f"{web.url}/uploads/{job.pk}/start/",
        data={"csrfmiddlewaretoken": csrf_token(preview)},
        headers={"Referer": preview.url},
        timeout=60,
    )
    if started.status_code != 200:
        return [f"start answered HTTP {started.status_code}"]
    if "preview" in expected:
        problems = []
        if expected["preview"] not in preview.text.replace("&#x27;", "'"):
            problems.append(f"the preview does not say {expected['preview']!r}")
        if UpsertJob.objects.get(pk=job.pk).status != JobStatus.PENDING:
            problems.append("the job was started")
        return problems
    job = wait_until(
        lambda: (fresh := UpsertJob.objects.get(pk=job.pk)).is_final and fresh, timeout=180
    )
    problems = []
    if job.status != expected["status"]:
        problems.append(f"status {job.status}, not {expected['status']}: {job.error_message}")
    if expected.get("error", "") not in job.error_message:
        problems.append(f"error {job.error_message!r} lacks {expected['error']!r}")
    if job.rows_upserted != expected["upserted"]:
        problems.append(f"{job.rows_upserted} rows upserted, not {expected['upserted']}")
    failures = dict(FailedRow.objects.filter(job=job).values_list("row_number", "reason"))
    if sorted(failures) != sorted(expected["failed"]):
        problems.append(
            f"failed rows {sorted(failures)[:10]}, not {sorted(expected['failed'])[:10]}"
        )
    for row, message in expected["failed"].items():
        if row in failures and message not in failures[row]:
            problems.append(f"row {row}: {failures[row]!r} lacks {message!r}")
            break
    if job.rows_read != job.rows_upserted + job.rows_failed:
        problems.append("rows read are not all upserted or failed")
    return problems


def test_every_hostile_file_ends_as_expected_and_no_process_outgrows_its_target(
    web, milvus, celery_worker, make_collection
):
    """One test for the whole corpus: the web process and the worker live through all of it,
    and their peaks, read once at the end, cover every file."""
    make_user_with_role("operator", roles.OPERATORS)
    cluster = ClusterEndpoint.objects.create(name="embedded", base_url=milvus.url)
    http = log_in(web)
    hostile_collection = make_collection(HOSTILE_FIELDS)

    problems = {}
    for name in sorted(EXPECTED):
        found = outcome_problems(web, http, cluster, hostile_collection, name)
        print(
            "PEAK",
            name,
            [peak_mb(pid) for pid in children(web.process.pid)],
            [peak_mb(pid) for pid in children(celery_worker.process.pid)],
        )
        if found:
            problems[name] = found

    assert problems == {}
    web_peaks = [peak_mb(pid) for pid in children(web.process.pid)]
    worker_peaks = [peak_mb(pid) for pid in children(celery_worker.process.pid)]
    print(f"peak RSS: web {web_peaks} MB, worker {worker_peaks} MB")
    assert web_peaks and max(web_peaks) < WEB_PEAK_MB, web_peaks
    assert worker_peaks and max(worker_peaks) < WORKER_PEAK_MB, worker_peaks


def peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def children(pid: int) -> list[int]:
    listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(child) for child in listed.split()]
