"""CSV lines whose quotes only wrap whole fields are split without the csv module."""

import csv
import random

from upserts.readers.csv_reader import split_plain_record


def test_plain_csv_lines_split_exactly_as_the_csv_module_reads_them():
    """The fast split either gives csv.reader's fields or leaves the line to csv.reader."""
    chooser = random.Random(20261125)
    pieces = ["a", "b", ",", '"', " ", "\r", "\n", "\x00", "[1.5, -2e3]", "é", '""']
    split = 0
    for _ in range(20_000):
        line = "".join(chooser.choice(pieces) for _ in range(chooser.randint(0, 12)))
        line = line.replace("\n", "") + chooser.choice(["", "\n", "\r\n"])
        fields = split_plain_record(line)
        if fields is None:
            continue
        split += 1
        assert fields == next(csv.reader([line], strict=True), []), repr(line)
    assert split > 2_000


def test_a_vector_cell_is_split_out_whole():
    line = '7,"Clock, Meadow","[0.5, -1.25, 3e-2]",\r\n'

    assert split_plain_record(line) == ["7", "Clock, Meadow", "[0.5, -1.25, 3e-2]", ""]


def test_lines_with_escaped_or_stray_quotes_are_left_to_the_csv_module():
    for line in ['1,"say ""hi""",2\n', '1,"open\n', '1,ab"c",2\n', '1, "x"\n', '"a"b\n']:
        assert split_plain_record(line) is None, line
