"""A JSON Lines or CSV file entered at a row's position: the rows that follow, exactly as a
read from the start gives them, without reading what comes before."""

import io

import pytest

from upserts.readers import read_rows

JSONL = (
    b"\xef\xbb\xbf"
    b'{"id": 1, "t": "a"}\n'
    b"\n"
    b'{"id": 2, "t": "b"}\r\n'
    b"not json\n"
    b"   \n"
    b"[1, 2]\n"
    b'{"id": 3, "t": "caf\xc3\xa9"}\n'
    b'{"id": 4, "t": "d"}'
)
CSV = (
    b"\xef\xbb\xbfid,t\n"
    b"1,a\n"
    b"\n\n"
    b'2,"two\nlines"\n'
    b"3\n"
    b'4,"say ""hi"""\r\n'
    b'5,"stray"quote\n'
    b"6,caf\xc3\xa9\n"
)


def rows(content: bytes, file_format: str, **options) -> list:
    return list(
        read_rows(
            io.BytesIO(content),
            file_format=file_format,
            gzipped=False,
            filename=f"f.{file_format}",
            **options,
        )  # fmt: skip
    )


def as_compared(read) -> list:
    return [(r.number, r.entity, r.error, r.raw, r.line, r.position_after) for r in read]


@pytest.mark.parametrize(("content", "file_format"), [(JSONL, "jsonl"), (CSV, "csv")])
def test_entering_at_each_rows_position_gives_the_rows_after_it(content, file_format):
    whole = rows(content, file_format)
    assert len(whole) >= 6 and all(row.position_after for row in whole)

    for index, row in enumerate(whole):
        resumed = rows(content, file_format, start_after=row.number, resume_at=row.position_after)

        assert as_compared(resumed) == as_compared(whole[index + 1 :])


def test_the_position_is_past_the_bytes_of_the_row_and_never_read_before_it():
    whole = rows(JSONL, "jsonl")
    offset, line = whole[1].position_after
    assert JSONL[:offset].endswith(b'"b"}\r\n') and line == 3

    # Bytes before the position are never read: garbage there changes nothing.
    spoiled = b"\x00" * offset + JSONL[offset:]
    resumed = rows(spoiled, "jsonl", start_after=2, resume_at=(offset, line))

    assert as_compared(resumed) == as_compared(whole[2:])


def test_a_gzip_file_ignores_the_position_and_reads_from_its_start():
    import gzip

    whole = rows(JSONL, "jsonl")
    packed = list(
        read_rows(io.BytesIO(gzip.compress(JSONL)), file_format="jsonl", gzipped=True,
                  filename="f.jsonl.gz", start_after=2, resume_at=whole[1].position_after)
    )  # fmt: skip

    assert [row.number for row in packed] == [row.number for row in whole[2:]]
