import subprocess
import sys
from pathlib import Path

import pytest

from questlog_schemas import Registry, UnknownEventType, lake
from questlog_schemas.registry import ENVELOPE, read_schema_files

DOC = Path(__file__).resolve().parents[2] / "docs" / "lake-contract.md"
ENVELOPE_COLUMNS = [
    ("event_id", "string", False),
    ("event_type", "string", False),
    ("event_time", "timestamp", True),
    ("received_at", "timestamp", False),
    ("player_id", "string", False),
    ("session_id", "string", True),
    ("host", "string", True),
    ("user_agent", "string", True),
    ("accept", "string", True),
    ("client_ip_hash", "string", True),
    ("schema_version", "long", False),
]
TAIL = [
    ("kafka_partition", "int", False),
    ("kafka_offset", "long", False),
    ("event_date", "date", False),
]


def layout(table: lake.Table) -> list[tuple[str, str, bool]]:
    return [(c.name, c.type, c.nullable) for c in table.columns]


def with_type(name: str, properties: dict) -> Registry:
    """The packaged registry plus one more event type (what adding its file would give)."""
    files = read_schema_files()
    envelope = files.pop(ENVELOPE)
    schema = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "required": list(properties)[:1],
    }
    return Registry(envelope["1-0-0"], {**files, name: {"1-0-0": schema}})


def test_one_table_per_event_type_then_the_quarantine(registry):
    assert list(lake.tables(registry)) == [*registry.event_types, "quarantine"]
    assert lake.tables()["quarantine"] is lake.QUARANTINE_TABLE


def test_purchase_sword_table():
    table = lake.event_table("purchase_sword")
    assert layout(table) == [
        *ENVELOPE_COLUMNS,
        ("sword_type", "string", False),
        ("price", "double", True),
        ("currency", "string", True),
        ("quantity", "long", True),
        *TAIL,
    ]
    assert (table.time_column, table.partition_column) == ("received_at", "event_date")
    assert table.property_names == ("sword_type", "price", "currency", "quantity")
    assert table.event_type == "purchase_sword"


def test_quarantine_table():
    table = lake.QUARANTINE_TABLE
    assert layout(table) == [
        ("raw_value", "string", True),
        ("raw_truncated", "boolean", False),
        ("reason", "string", False),
        ("topic", "string", False),
        ("kafka_partition", "int", False),
        ("kafka_offset", "long", False),
        ("kafka_timestamp", "timestamp", False),
        ("seen_at", "timestamp", False),
        ("seen_date", "date", False),
    ]
    assert (table.time_column, table.partition_column) == ("seen_at", "seen_date")
    assert table.event_type is None
    assert table.property_names == ()


def test_a_new_event_type_is_a_new_table_with_no_other_change(registry):
    more = with_type(
        "open_chest",
        {
            "chest_level": {"type": "integer"},
            "opened_at": {"type": "string", "format": "date-time"},
        },
    )
    assert list(lake.tables(more)) == [*sorted([*registry.event_types, "open_chest"]), "quarantine"]
    assert layout(lake.event_table("open_chest", more)) == [
        *ENVELOPE_COLUMNS,
        ("chest_level", "long", False),
        ("opened_at", "timestamp", True),
        *TAIL,
    ]
    assert "`open_chest`" in lake.markdown(more)


@pytest.mark.parametrize("root", ["file:///var/lake", "file:///var/lake/", "hdfs://nn:8020/lake"])
def test_where_tables_and_checkpoints_live(root):
    base = root.rstrip("/")
    assert lake.table_uri(root, "join_guild") == f"{base}/tables/join_guild"
    assert lake.table_uri(root, lake.QUARANTINE) == f"{base}/tables/quarantine"
    assert lake.checkpoint_uri(root, "extractor") == f"{base}/_checkpoints/extractor"


@pytest.mark.parametrize(
    "field", [{"type": "object", "properties": {}}, {"type": "array", "items": {"type": "string"}}]
)
def test_a_property_with_no_column_type_is_refused(field):
    with pytest.raises(ValueError, match="'loot': a lake column needs a scalar JSON type"):
        lake.event_table("open_chest", with_type("open_chest", {"loot": field}))


def test_a_property_may_not_repeat_an_envelope_column():
    registry = with_type("emote", {"host": {"type": "string", "maxLength": 8}})
    with pytest.raises(ValueError, match=r"'emote': properties \['host'\] repeat"):
        lake.event_table("emote", registry)


@pytest.mark.parametrize("name", ["quarantine", "purchases"])
def test_an_event_type_may_not_take_a_lake_name(name):
    with pytest.raises(ValueError, match=rf"\['{name}'\] take a name the lake already uses"):
        lake.tables(with_type(name, {"n": {"type": "integer"}}))


def test_unknown_type():
    with pytest.raises(UnknownEventType):
        lake.event_table("buy_shield")


def test_the_walkthrough_aliases_name_registered_tables(registry):
    assert set(lake.ALIASES.values()) <= set(registry.event_types)
    assert not set(lake.ALIASES) & set(lake.tables(registry))


def test_arrow_schema():
    pa = pytest.importorskip("pyarrow")
    assert lake.arrow_schema(lake.QUARANTINE_TABLE) == pa.schema(
        [
            ("raw_value", pa.string()),
            ("raw_truncated", pa.bool_()),
            ("reason", pa.string()),
            ("topic", pa.string()),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
            ("kafka_timestamp", pa.timestamp("us", tz="UTC")),
            ("seen_at", pa.timestamp("us", tz="UTC")),
            ("seen_date", pa.date32()),
        ]
    )
    every_type = lake.Table("t", tuple(lake.Column(t, t) for t in lake.LAKE_TYPES), "x", "y")
    schema = lake.arrow_schema(every_type)
    assert [str(t) for t in schema.types] == [
        "string",
        "int64",
        "int32",
        "double",
        "bool",
        "timestamp[us, tz=UTC]",
        "date32[day]",
    ]
    assert all(field.nullable for field in schema)


def test_spark_table_schema_agrees_with_the_parse_schemas(registry):
    pytest.importorskip("pyspark")
    from pyspark.sql.types import StructField

    from questlog_schemas.spark import envelope_schema, properties_schema, table_schema

    envelope = envelope_schema(registry)
    for name in registry.event_types:
        schema = table_schema(lake.event_table(name, registry))
        assert all(field.nullable for field in schema)
        for field in properties_schema(name, registry):
            assert schema[field.name] == StructField(field.name, field.dataType, True)
        for field in envelope:
            if field.name == "context":
                for inner in field.dataType:
                    assert schema[inner.name].dataType == inner.dataType
            elif field.name != "properties":
                assert schema[field.name].dataType == field.dataType
    quarantine = table_schema(lake.QUARANTINE_TABLE).simpleString()
    assert quarantine == (
        "struct<raw_value:string,raw_truncated:boolean,reason:string,"
        "topic:string,kafka_partition:int,kafka_offset:bigint,"
        "kafka_timestamp:timestamp,seen_at:timestamp,seen_date:date>"
    )


def test_the_committed_doc_is_the_generated_one():
    text = DOC.read_text("utf-8")
    start, end = text.index(lake.BEGIN), text.index(lake.END) + len(lake.END) + 1
    assert text[start:end] == lake.markdown(), (
        "docs/lake-contract.md is stale: python -m questlog_schemas.lake --write "
        "docs/lake-contract.md"
    )


def test_write_replaces_only_the_generated_block(tmp_path):
    doc = tmp_path / "contract.md"
    doc.write_text(f"# intro\n\n{lake.BEGIN}\nold tables\n{lake.END}\n\nafter\n", "utf-8")
    assert lake.main(["--write", str(doc)]) == 0
    assert doc.read_text("utf-8") == f"# intro\n\n{lake.markdown()}\nafter\n"
    with pytest.raises(ValueError, match="no generated block"):
        lake.replace_generated("# no markers\n", lake.markdown())


def test_markdown_lists_every_column(registry):
    text = lake.markdown(registry)
    for table in lake.tables(registry).values():
        for column in table.columns:
            assert f"| `{column.name}` | {column.type} |" in text


def test_import_needs_neither_pyspark_nor_pyarrow():
    code = (
        "import sys; from questlog_schemas import lake; lake.tables(); lake.markdown(); "
        "print(sorted(m for m in ('pyspark', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
