"""Each row is checked against the collection's schema, with a sentence per problem."""

import math

import pytest

from upserts.milvus.schema import CollectionSchema, FieldSchema
from upserts.validation.collections import schema_warnings
from upserts.validation.entities import EntityValidator, ProblemCode, RowProblem, check_entity
from upserts.validation.text_cells import coerce_text_values


def make_schema(*fields: FieldSchema, dynamic: bool = False, name: str = "books"):
    return CollectionSchema(name=name, fields=fields, enable_dynamic_field=dynamic)


BOOKS = make_schema(
    FieldSchema("book_id", "Int64", is_primary=True),
    FieldSchema("title", "VarChar", max_length=64),
    FieldSchema("emb", "FloatVector", dim=768),
    FieldSchema("year", "Int32"),
)
VECTOR = [0.25] * 768


def book(**changes):
    entity = {"book_id": 1, "title": "Clock Meadow", "emb": list(VECTOR), "year": 2007}
    entity.update(changes)
    return entity


def problems(entity, schema=BOOKS) -> list[str]:
    found = check_entity(entity, schema)
    assert EntityValidator(schema).check(entity) == found
    return [problem.message for problem in found]


def test_a_valid_entity_has_no_problems():
    assert problems(book()) == []


# --- primary key -----------------------------------------------------------------------------


def test_a_missing_primary_key_is_named():
    entity = book()
    del entity["book_id"]

    assert problems(entity) == ["field `book_id` (the primary key) is missing"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("7", 'expected an integer, got "7"'),
        (True, "expected an integer, got true (a boolean)"),
        (1.0, "expected an integer, got 1.0"),
        (None, "null, but the field is not nullable; it needs an integer"),
        (
            2**63,
            "9223372036854775808 is outside the Int64 range, "
            "-9223372036854775808 to 9223372036854775807",
        ),
    ],
)
def test_an_int64_primary_key_must_be_an_integer_in_int64_range(value, problem):
    assert problems(book(book_id=value)) == [f"field `book_id` (the primary key): {problem}"]


def test_int64_primary_key_limits_are_accepted():
    assert problems(book(book_id=2**63 - 1)) == []
    assert problems(book(book_id=-(2**63))) == []


def test_a_varchar_primary_key_must_be_a_string_within_max_length():
    schema = make_schema(
        FieldSchema("isbn", "VarChar", is_primary=True, max_length=13),
        FieldSchema("emb", "FloatVector", dim=2),
    )

    assert problems({"isbn": "9780000000001", "emb": [0.0, 1.0]}, schema) == []
    assert problems({"isbn": 9780000000001, "emb": [0.0, 1.0]}, schema) == [
        "field `isbn` (the primary key): expected a string, got 9780000000001"
    ]
    assert problems({"isbn": "97800000000012", "emb": [0.0, 1.0]}, schema) == [
        "field `isbn` (the primary key): 14 bytes of UTF-8 text, more than its max_length of "
        "13 (Milvus counts bytes, not characters)"
    ]


def test_a_primary_key_given_to_an_autoid_collection_is_refused():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True, auto_id=True),
        FieldSchema("emb", "FloatVector", dim=2),
    )

    assert problems({"emb": [0.0, 1.0]}, schema) == []
    assert problems({"id": 5, "emb": [0.0, 1.0]}, schema) == [
        "field `id` is the collection's autoID primary key: Milvus assigns it, so leave it out "
        "of the file"
    ]


# --- vectors ---------------------------------------------------------------------------------


def test_a_vector_of_the_wrong_dimension_names_both_lengths():
    assert problems(book(emb=VECTOR[:-1])) == ["field `emb`: expected 768 floats, got 767"]
    assert problems(book(emb=VECTOR + [0.5])) == ["field `emb`: expected 768 floats, got 769"]


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")],
)
def test_nan_and_infinity_in_a_vector_are_refused(bad, shown):
    emb = list(VECTOR)
    emb[99] = bad

    assert problems(book(emb=emb)) == [
        f"field `emb`: value 100 of 768 is {shown}: Milvus refuses NaN and infinity"
    ]


@pytest.mark.parametrize(
    ("element", "shown"), [("0.5", '"0.5"'), (True, "true"), (None, "null"), ([0.5], "[0.5]")]
)
def test_vector_elements_must_be_numbers(element, shown):
    emb = list(VECTOR)
    emb[0] = element

    assert problems(book(emb=emb)) == [f"field `emb`: value 1 of 768 is {shown}, not a number"]


def test_integers_in_a_vector_are_numbers_too():
    assert problems(book(emb=[0] * 767 + [1])) == []


def test_a_vector_value_beyond_float32_is_refused_but_large_float32_values_are_not():
    big = [3.0e38] * 768
    too_big = list(VECTOR)
    too_big[5] = 1e39

    assert problems(book(emb=big)) == []
    assert problems(book(emb=too_big)) == [
        "field `emb`: value 6 of 768, 1e39, is beyond the FloatVector range"
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[0.25, 0.5]", 'expected a list of 768 floats, got "[0.25, 0.5]"'),
        ({"0": 0.5}, 'expected a list of 768 floats, got {"0":0.5}'),
        (None, "null, but the field is not nullable; it needs a list of 768 floats"),
    ],
)
def test_a_vector_must_be_a_list(value, problem):
    assert problems(book(emb=value)) == [f"field `emb`: {problem}"]


def test_a_tuple_vector_is_accepted():
    assert problems(book(emb=tuple(VECTOR))) == []


def test_a_float16_vector_has_the_float16_range():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True), FieldSchema("h", "Float16Vector", dim=2)
    )

    assert problems({"id": 1, "h": [65504.0, -1.0]}, schema) == []
    assert problems({"id": 1, "h": [65536.0, -1.0]}, schema) == [
        "field `h`: value 1 of 2, 65536.0, is beyond the Float16Vector range"
    ]


def test_a_binary_vector_is_its_bytes():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True), FieldSchema("b", "BinaryVector", dim=16)
    )

    assert problems({"id": 1, "b": [0, 255]}, schema) == []
    assert problems({"id": 1, "b": [0, 255, 1]}, schema) == [
        "field `b`: expected 2 integers from 0 to 255 (16 bits), got 3 values"
    ]
    assert problems({"id": 1, "b": [0, 256]}, schema) == [
        "field `b`: value 2 is 256; expected 2 integers from 0 to 255 (16 bits)"
    ]


def test_a_sparse_vector_maps_indexes_to_finite_numbers():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True), FieldSchema("s", "SparseFloatVector")
    )

    assert problems({"id": 1, "s": {"3": 0.5, "10": 1}}, schema) == []
    assert problems({"id": 1, "s": {"indices": [3, 10], "values": [0.5, 1.0]}}, schema) == []
    assert problems({"id": 1, "s": {"x": 0.5}}, schema) == [
        'field `s`: index "x" is not an integer from 0 to 4294967295'
    ]
    assert problems({"id": 1, "s": {"3": math.nan}}, schema) == [
        "field `s`: at index 3: NaN is refused: Milvus takes finite numbers only"
    ]


# --- scalars ---------------------------------------------------------------------------------

INTS = make_schema(
    FieldSchema("id", "Int64", is_primary=True),
    FieldSchema("i8", "Int8", nullable=True),
    FieldSchema("i16", "Int16", nullable=True),
    FieldSchema("i32", "Int32", nullable=True),
)


@pytest.mark.parametrize(
    ("field", "low", "high"),
    [("i8", -128, 127), ("i16", -32768, 32767), ("i32", -(2**31), 2**31 - 1)],
)
def test_integer_fields_keep_to_their_range(field, low, high):
    type_name = {"i8": "Int8", "i16": "Int16", "i32": "Int32"}[field]

    assert problems({"id": 1, field: low}, INTS) == []
    assert problems({"id": 1, field: high}, INTS) == []
    assert problems({"id": 1, field: high + 1}, INTS) == [
        f"field `{field}`: {high + 1} is outside the {type_name} range, {low} to {high}"
    ]
    assert problems({"id": 1, field: low - 1}, INTS) == [
        f"field `{field}`: {low - 1} is outside the {type_name} range, {low} to {high}"
    ]


def test_an_integer_field_refuses_booleans_fractions_and_text():
    assert problems({"id": 1, "i8": False}, INTS) == [
        "field `i8`: expected an integer, got false (a boolean)"
    ]
    assert problems({"id": 1, "i8": 2.5}, INTS) == ["field `i8`: expected an integer, got 2.5"]
    assert problems({"id": 1, "i8": "3"}, INTS) == ['field `i8`: expected an integer, got "3"']


FLOATS = make_schema(
    FieldSchema("id", "Int64", is_primary=True),
    FieldSchema("f", "Float", nullable=True),
    FieldSchema("d", "Double", nullable=True),
)


@pytest.mark.parametrize("field", ["f", "d"])
def test_float_fields_take_integers_and_refuse_nan_and_infinity(field):
    assert problems({"id": 1, field: 3}, FLOATS) == []
    assert problems({"id": 1, field: -0.5}, FLOATS) == []
    assert problems({"id": 1, field: math.nan}, FLOATS) == [
        f"field `{field}`: NaN is refused: Milvus takes finite numbers only"
    ]
    assert problems({"id": 1, field: -math.inf}, FLOATS) == [
        f"field `{field}`: -Infinity is refused: Milvus takes finite numbers only"
    ]
    assert problems({"id": 1, field: True}, FLOATS) == [
        f"field `{field}`: expected a number, got true (a boolean)"
    ]
    assert problems({"id": 1, field: "1.5"}, FLOATS) == [
        f'field `{field}`: expected a number, got "1.5"'
    ]


def test_a_float_field_has_the_float32_range_and_a_double_does_not():
    assert problems({"id": 1, "f": 1e39}, FLOATS) == ["field `f`: 1e39 is beyond the Float range"]
    assert problems({"id": 1, "d": 1e39}, FLOATS) == []


def test_a_bool_field_takes_real_booleans_only():
    schema = make_schema(FieldSchema("id", "Int64", is_primary=True), FieldSchema("b", "Bool"))

    assert problems({"id": 1, "b": False}, schema) == []
    assert problems({"id": 1, "b": 1}, schema) == ["field `b`: expected true or false, got 1"]
    assert problems({"id": 1, "b": "yes"}, schema) == [
        'field `b`: expected true or false, got "yes"'
    ]


def test_varchar_max_length_counts_utf8_bytes():
    # VarChar(64): 64 ASCII characters fit, and so do 32 two-byte ones; 22 CJK characters are
    # 66 bytes and do not, though they are only 22 characters.
    assert problems(book(title="a" * 64)) == []
    assert problems(book(title="é" * 32)) == []
    assert problems(book(title="a" * 65)) == [
        "field `title`: 65 bytes of UTF-8 text, more than its max_length of 64 "
        "(Milvus counts bytes, not characters)"
    ]
    assert problems(book(title="é" * 33)) == [
        "field `title`: 66 bytes of UTF-8 text, more than its max_length of 64 "
        "(Milvus counts bytes, not characters)"
    ]
    assert problems(book(title="雪" * 22)) == [
        "field `title`: 66 bytes of UTF-8 text, more than its max_length of 64 "
        "(Milvus counts bytes, not characters)"
    ]


def test_an_empty_string_is_a_valid_varchar():
    assert problems(book(title="")) == []


def test_an_array_checks_its_elements_against_the_element_type():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True),
        FieldSchema("tags", "Array", element_type="VarChar", max_length=4),
        FieldSchema("loose", "Array", nullable=True),
    )

    assert problems({"id": 1, "tags": ["a", "bcde"], "loose": [1, "x"]}, schema) == []
    assert problems({"id": 1, "tags": ["a", 2]}, schema) == [
        "field `tags`: value 2 of 2: expected a string, got 2"
    ]
    assert problems({"id": 1, "tags": ["abcde"]}, schema) == [
        "field `tags`: value 1 of 1: 5 bytes of UTF-8 text, more than its max_length "
        "of 4 (Milvus counts bytes, not characters)"
    ]
    assert problems({"id": 1, "tags": "a"}, schema) == ['field `tags`: expected an array, got "a"']


def test_a_json_field_takes_any_json_value():
    schema = make_schema(FieldSchema("id", "Int64", is_primary=True), FieldSchema("j", "JSON"))

    for value in ({"a": [1, 2]}, [1], "text", 3, True):
        assert problems({"id": 1, "j": value}, schema) == []


# --- fields present and absent ---------------------------------------------------------------


def test_missing_fields_are_each_named():
    assert problems({"book_id": 1}) == [
        "field `title` is missing",
        "field `emb` is missing",
        "field `year` is missing",
    ]


def test_a_nullable_field_may_be_null_or_absent():
    assert problems({"id": 1}, INTS) == []
    assert problems({"id": 1, "i8": None}, INTS) == []


def test_a_field_with_a_default_may_be_null_or_absent_but_not_a_wrong_value():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True),
        FieldSchema("price", "Double", has_default=True, default_value=9.5),
    )

    assert problems({"id": 1}, schema) == []
    assert problems({"id": 1, "price": None}, schema) == []
    assert problems({"id": 1, "price": "cheap"}, schema) == [
        'field `price`: expected a number, got "cheap"'
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([-128, 0, 127], None),
        ([1, 2], "expected 3 integers from -128 to 127, got 2 values"),
        ([1, 2, 128], "value 3 is 128; expected 3 integers from -128 to 127"),
        ([1, 2.5, 3], "value 2 is 2.5; expected 3 integers from -128 to 127"),
    ],
)
def test_an_int8_vector_takes_dim_integers_from_minus_128_to_127(value, problem):
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True), FieldSchema("v", "Int8Vector", dim=3)
    )

    assert problems({"id": 1, "v": value}, schema) == ([f"field `v`: {problem}"] if problem else [])


def test_null_in_a_field_that_is_not_nullable_is_refused():
    assert problems(book(year=None)) == [
        "field `year`: null, but the field is not nullable; it needs an integer"
    ]


def test_an_unknown_field_is_refused_without_a_dynamic_field():
    assert problems(book(genre="fantasy")) == [
        "field `genre` is not in the collection and it has no dynamic field"
    ]


def test_an_unknown_field_lands_in_the_dynamic_field_when_there_is_one():
    schema = make_schema(*BOOKS.fields, dynamic=True)

    assert problems(book(genre="fantasy", rating=4.5), schema) == []


def test_every_problem_of_a_row_is_reported_at_once():
    entity = book(book_id="x", emb=[0.1], extra=1)
    del entity["title"]

    assert problems(entity) == [
        'field `book_id` (the primary key): expected an integer, got "x"',
        "field `emb`: expected 768 floats, got 1",
        "field `extra` is not in the collection and it has no dynamic field",
        "field `title` is missing",
    ]


def test_long_values_are_shortened_in_messages():
    [message] = problems(book(title=["word"] * 50))

    assert message.startswith('field `title`: expected a string, got ["word","word",')
    assert message.endswith("...")
    assert len(message) < 100


# --- CSV text --------------------------------------------------------------------------------

CSV_SCHEMA = make_schema(
    FieldSchema("id", "Int64", is_primary=True),
    FieldSchema("title", "VarChar", max_length=64),
    FieldSchema("emb", "FloatVector", dim=3),
    FieldSchema("score", "Double"),
    FieldSchema("ok", "Bool"),
    FieldSchema("meta", "JSON"),
    FieldSchema("tags", "Array", element_type="Int64"),
    FieldSchema("rank", "Int16", nullable=True),
    dynamic=True,
)
CSV_ROW = {
    "id": "12",
    "title": "007",
    "emb": "[0.5, 1, -2.25]",
    "score": "-1.5e3",
    "ok": " TRUE ",
    "meta": '{"a": [1, 2]}',
    "tags": "[1, 2]",
    "rank": "3",
    "genre": "42",
}


def test_csv_text_is_typed_by_the_schema():
    typed = coerce_text_values(CSV_ROW, CSV_SCHEMA)

    assert typed == {
        "id": 12,
        "title": "007",
        "emb": [0.5, 1, -2.25],
        "score": -1500.0,
        "ok": True,
        "meta": {"a": [1, 2]},
        "tags": [1, 2],
        "rank": 3,
        "genre": "42",
    }
    assert problems(typed, CSV_SCHEMA) == []


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("False", False),
                                             ("0", False)])  # fmt: skip
def test_csv_booleans_are_true_false_one_or_zero(text, value):
    assert coerce_text_values(dict(CSV_ROW, ok=text), CSV_SCHEMA)["ok"] is value


def test_csv_text_that_does_not_parse_is_reported_by_the_check():
    row = dict(CSV_ROW, id="12a", score="high", ok="yes", emb="[0.5, 1", meta="{broken")

    typed = coerce_text_values(row, CSV_SCHEMA)
    found = problems(typed, CSV_SCHEMA)

    assert found[:3] == [
        'field `id` (the primary key): expected an integer, got "12a"',
        'field `emb`: expected a list of 3 floats, got "[0.5, 1": not valid JSON '
        "(unexpected end of data at column 8)",
        'field `score`: expected a number, got "high"',
    ]
    assert found[3] == 'field `ok`: expected true or false, got "yes"'
    assert found[4].startswith('field `meta`: expected JSON, got "{broken": not valid JSON (')
    assert len(found) == 5


def test_an_empty_csv_cell_is_null_where_allowed_and_a_problem_where_not():
    typed = coerce_text_values(dict(CSV_ROW, rank="", score=" ", title=""), CSV_SCHEMA)

    assert typed["rank"] is None
    assert typed["title"] == ""
    assert problems(typed, CSV_SCHEMA) == ["field `score`: empty; it needs a number"]


def test_csv_nan_text_becomes_nan_and_is_refused():
    typed = coerce_text_values(dict(CSV_ROW, score="nan"), CSV_SCHEMA)

    assert problems(typed, CSV_SCHEMA) == [
        "field `score`: NaN is refused: Milvus takes finite numbers only"
    ]


# --- the collection itself -------------------------------------------------------------------


def test_a_plain_collection_has_no_warnings():
    assert schema_warnings(BOOKS) == []


def test_an_autoid_collection_is_warned_about():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True, auto_id=True),
        FieldSchema("emb", "FloatVector", dim=2),
    )

    [warning] = schema_warnings(schema)

    assert "an autoID collection cannot take upserts" in warning
    assert "`id`" in warning


def test_json_and_array_fields_are_warned_about_for_milvus_2_3_5():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True),
        FieldSchema("emb", "FloatVector", dim=2),
        FieldSchema("meta", "JSON"),
        FieldSchema("tags", "Array"),
    )

    [warning] = schema_warnings(schema)

    assert "Milvus 2.3.5's v1 REST API refuses collections with JSON or Array fields" in warning
    assert "every batch would fail" in warning
    assert "(`meta`, `tags`)" in warning


def test_json_and_array_fields_are_not_warned_about_for_a_grpc_cluster():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True),
        FieldSchema("emb", "FloatVector", dim=2),
        FieldSchema("meta", "JSON"),
        FieldSchema("tags", "Array"),
    )

    assert schema_warnings(schema, api_version="grpc") == []
    assert len(schema_warnings(schema, api_version="v2")) == 1


def test_a_collection_without_a_primary_key_is_warned_about():
    schema = make_schema(FieldSchema("emb", "FloatVector", dim=2))

    assert "has no primary key field" in schema_warnings(schema)[0]
    assert check_entity({"emb": [0.0, 1.0]}, schema) == []


def test_each_problem_names_its_field_and_kind():
    schema = make_schema(
        FieldSchema("id", "Int64", is_primary=True, auto_id=True),
        FieldSchema("title", "VarChar", max_length=8),
        FieldSchema("emb", "FloatVector", dim=2),
    )

    found = check_entity({"id": 1, "title": "far too long a title", "colour": "red"}, schema)

    assert [(problem.field, problem.code) for problem in found] == [
        ("id", ProblemCode.GENERATED_KEY),
        ("title", ProblemCode.INVALID_VALUE),
        ("colour", ProblemCode.UNKNOWN_FIELD),
        ("emb", ProblemCode.MISSING_FIELD),
    ]
    assert all(isinstance(problem, RowProblem) for problem in found)
    assert str(found[1]) == found[1].message and "`title`" in found[1].message
