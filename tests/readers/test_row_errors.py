"""A row that cannot be read fails alone, named by number and line, and reading goes on."""

from pathlib import Path

from upserts.readers import SourceRow, read_rows


def read(path: Path, file_format: str) -> list[SourceRow]:
    with open(path, "rb") as file:
        return list(read_rows(file, file_format=file_format, gzipped=False, filename=path.name))


def test_broken_jsonl_lines_are_failed_rows_with_line_and_original_text(tmp_path):
    path = tmp_path / "books.jsonl"
    path.write_bytes(
        b'{"id": 1}\n'
        b"\n"
        b'{"id": 2, "title": "no closing brace"\n'
        b'{"id": 3}\r\n'
        b"[1, 2]\n"
        b'"just a string"\n'
        b'{"id": 7}'  # no line break at the end
    )

    rows = read(path, "jsonl")

    assert [(row.number, row.line) for row in rows] == [(1, 1), (2, 3), (3, 4), (4, 5), (5, 6),
                                                        (6, 7)]  # fmt: skip
    assert [row.entity for row in rows] == [{"id": 1}, None, {"id": 3}, None, None, {"id": 7}]
    broken, array, string = rows[1], rows[3], rows[4]
    assert broken.error.startswith("line 3, column ")
    assert "not valid JSON" in broken.error
    assert broken.raw == '{"id": 2, "title": "no closing brace"'
    assert array.error == "line 5 holds an array, not an object"
    assert array.raw == "[1, 2]"
    assert string.error == "line 6 holds a string, not an object"
    assert string.raw == '"just a string"'


def test_nan_in_jsonl_is_a_row_error_because_it_is_not_json(tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_bytes(b'{"id": 1, "x": NaN}\n{"id": 2}\n')

    rows = read(path, "jsonl")

    assert rows[0].entity is None and "not valid JSON" in rows[0].error
    assert rows[1].entity == {"id": 2}


def test_non_object_elements_of_a_json_array_are_failed_rows(tmp_path):
    path = tmp_path / "books.json"
    path.write_bytes(b'[{"id": 1}, [1, 2], null, {"id": 4}, 5, "s", true]')

    rows = read(path, "json")

    assert [row.number for row in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [row.entity for row in rows] == [{"id": 1}, None, None, {"id": 4}, None, None, None]
    assert [row.error for row in rows if row.error] == [
        "row 2 is an array, not an object",
        "row 3 is null, not an object",
        "row 5 is a number, not an object",
        "row 6 is a string, not an object",
        "row 7 is a boolean, not an object",
    ]
    assert rows[1].raw == "[1,2]"
    assert all(row.line is None for row in rows)


def test_short_and_long_csv_rows_are_failed_rows_naming_their_line(tmp_path):
    path = tmp_path / "books.csv"
    path.write_bytes(
        b"id,title,year\n"
        b"1,Clock Meadow,2007\n"
        b"2,Too short\n"
        b'3,"Multi\nline",1999\n'
        b"4,Too,long,row\n"
        b"\n"
        b"5,Last,2020\n"
    )

    rows = read(path, "csv")

    assert [(row.number, row.line) for row in rows] == [(1, 2), (2, 3), (3, 4), (4, 6), (5, 8)]
    assert rows[1].error == "line 3: 2 values, but the header has 3 columns"
    assert rows[1].raw == "2,Too short"
    assert rows[2].entity == {"id": "3", "title": "Multi\nline", "year": "1999"}
    assert rows[3].error == "line 6: 4 values, but the header has 3 columns"
    assert rows[3].raw == "4,Too,long,row"
    assert rows[4].entity == {"id": "5", "title": "Last", "year": "2020"}


def test_runs_of_blank_csv_lines_are_passed_over_in_bulk_and_counted_as_lines(tmp_path):
    """A million blank lines, then a bad row and a quoted value with blank lines inside it:
    the lines are numbered as the file has them, and the quoted blank lines are data."""
    path = tmp_path / "blanks.csv"
    path.write_bytes(b"id,title\n1,a\n" + b"\n" * 1_000_000 + b'2,b,extra\n\n\n3,"x\n\n\ny"\n4,d\n')

    rows = read(path, "csv")

    assert [(row.number, row.line) for row in rows] == [
        (1, 2),
        (2, 1_000_003),
        (3, 1_000_006),
        (4, 1_000_010),
    ]
    assert rows[1].error == "line 1,000,003: 3 values, but the header has 2 columns"
    assert rows[2].entity == {"id": "3", "title": "x\n\n\ny"}


def test_a_stray_quote_in_csv_fails_its_row_only(tmp_path):
    path = tmp_path / "books.csv"
    path.write_bytes(b'id,title\n1,"ok"\n2,"bad"quote\n3,fine\n')

    rows = read(path, "csv")

    assert [row.number for row in rows] == [1, 2, 3]
    assert rows[1].entity is None
    assert rows[1].error.startswith("line 3: unreadable CSV")
    assert rows[1].raw == '2,"bad"quote'
    assert rows[2].entity == {"id": "3", "title": "fine"}


def test_an_unclosed_csv_quote_at_the_end_fails_the_last_row(tmp_path):
    path = tmp_path / "books.csv"
    path.write_bytes(b'id,title\n1,ok\n2,"never closed\n3,swallowed\n')

    rows = read(path, "csv")

    assert rows[0].entity == {"id": "1", "title": "ok"}
    assert rows[1].error.startswith("line 3: unreadable CSV")
    assert rows[1].raw == '2,"never closed\n3,swallowed'


def test_csv_header_names_are_trimmed(tmp_path):
    path = tmp_path / "books.csv"
    path.write_bytes(b" id , title\n1,x\n")

    assert read(path, "csv")[0].entity == {"id": "1", "title": "x"}
