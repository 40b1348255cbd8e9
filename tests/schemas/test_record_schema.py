"""The JSON Schema files are the one definition of a record: the dataclasses,
the PostgreSQL tables and the Parquet schema must agree with them."""

import dataclasses
import uuid

import psycopg
import pyarrow as pa
import pytest

from wirestream.schemas import DeadLetter, EventRecord, Origin, load_schema
from wirestream.transforms.io.files import arrow_schema
from wirestream.transforms.io.postgres import LAYOUTS, RECORD, create_table
from wirestream.transforms.io.sinks import RecordKind
from tests.transforms.io.test_postgres import server  # noqa: F401  (the fixture: skip, or fail in CI)


def test_event_record_fields_are_the_schema_properties():
    published = {f.name for f in dataclasses.fields(EventRecord)} - set(EventRecord._INTERNAL)
    assert published | {"origin"} == set(load_schema("event_record")["properties"])


def test_dead_letter_document_is_the_schema_properties():
    document = DeadLetter("parse", "bad", b"x", Origin("file", "2024-01-01T00:00:00Z")).to_dict()
    assert set(document) == set(load_schema("dead_letter")["properties"])


@pytest.mark.parametrize("kind, schema", [(RecordKind.EVENTS, "event_record"),
                                          (RecordKind.DEAD_LETTERS, "dead_letter")])
def test_every_table_column_but_the_document_is_a_schema_field(kind, schema):
    fields = set(load_schema(schema)["properties"]) | set(load_schema("origin")["properties"])
    assert set(LAYOUTS[kind].names) - fields - {RECORD} == set()


@pytest.mark.parametrize("kind, schema", [(RecordKind.EVENTS, "event_record"),
                                          (RecordKind.DEAD_LETTERS, "dead_letter")])
def test_parquet_columns_are_the_schema_properties_in_order(kind, schema):
    assert arrow_schema(kind).names == list(load_schema(schema)["properties"])


def test_schema_formats_give_the_parquet_and_postgres_types():
    events = arrow_schema(RecordKind.EVENTS)
    assert events.field("published_at").type == pa.timestamp("ms", tz="UTC")
    assert events.field("dates_mentioned").type.value_type.field("date").type == pa.date32()
    types = {c.name: c.sql_type for c in LAYOUTS[RecordKind.EVENTS].columns}
    assert (types["event_id"], types["published_at"], types["ingested_at"]) == (
        "uuid", "timestamptz", "timestamptz")


@pytest.fixture
def connection(server):  # noqa: F811
    with psycopg.connect(server, autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize("kind", list(RecordKind))
def test_the_created_table_has_the_layout_columns_in_order(connection, kind):
    table = f"wirestream_schema_{uuid.uuid4().hex[:10]}"
    try:
        create_table(connection, table, kind)
        rows = connection.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position", (table,)).fetchall()
        layout = LAYOUTS[kind]
        assert [name for name, _ in rows] == list(layout.names)
        assert [n == "NO" for _, n in rows] == [c.not_null for c in layout.columns]
        create_table(connection, table, kind)  # a second start changes nothing
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {table}")


def test_an_origin_with_its_item_is_the_origin_dataclasses_replace_gives():
    import pickle

    origin = Origin(kind="kafka", ingested_at="2024-06-23T10:00:00Z", topic="wire", partition=2, offset=7,
                    headers={"h": "v"}, item=0, item_count=1)
    moved = origin.with_item(3, 5)
    assert moved == dataclasses.replace(origin, item=3, item_count=5)
    assert (origin.item, origin.item_count) == (0, 1)  # the original is left as it was
    assert moved.to_dict() == {**origin.to_dict(), "item": 3, "item_count": 5}
    assert pickle.loads(pickle.dumps(moved)) == moved
    with pytest.raises(dataclasses.FrozenInstanceError):
        moved.item = 4
