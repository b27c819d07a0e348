"""The CRD-to-strict-schema conversion and the cache's once-only behaviour, offline."""

from __future__ import annotations

import json

import jsonschema
import pytest

from questlog_k8s import schemas

OBJECT_META = schemas.OBJECT_META


def crd(version_schema: dict, *, versions=("v1",), served=True) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.questlog.dev"},
        "spec": {
            "group": "example.questlog.dev",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": v,
                    "served": served,
                    "storage": i == 0,
                    "schema": {"openAPIV3Schema": version_schema},
                }
                for i, v in enumerate(versions)
            ],
        },
    }


WIDGET = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "ports": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"port": {"type": "integer"}}},
                },
                "config": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {
                        "tuned": {"type": "object", "properties": {"level": {"type": "integer"}}}
                    },
                },
                "opaque": {"type": "object"},
                "note": {"type": "string", "nullable": True},
                "either": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
                },
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def widget_schema(object_meta=None) -> dict:
    converted = schemas.crd_json_schemas(crd(WIDGET), object_meta)
    assert list(converted) == ["widget-example-v1.json"]
    return converted["widget-example-v1.json"]


def errors(schema: dict, spec: dict, **top) -> list[str]:
    instance = {
        "apiVersion": "example.questlog.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
        **top,
    }
    validator = jsonschema.Draft4Validator(schema)
    return sorted(e.message for e in validator.iter_errors(instance))


def test_the_original_schema_is_open_and_the_converted_one_is_not():
    spec = {"size": 1, "sizee": 2}
    assert jsonschema.Draft4Validator(WIDGET).is_valid({"spec": spec})
    assert errors(widget_schema(), spec) == [
        "Additional properties are not allowed ('sizee' was unexpected)"
    ]


def test_a_valid_object_passes():
    spec = {
        "size": 1,
        "labels": {"x": "y"},
        "ports": [{"port": 80}],
        "note": None,
        "config": {"anything": {"goes": 1}, "tuned": {"level": 2}},
        "either": {"a": "1"},
    }
    assert errors(widget_schema(), spec) == []


def test_nested_objects_and_list_items_are_closed():
    assert errors(widget_schema(), {"size": 1, "ports": [{"port": 80, "protocol": "TCP"}]}) == [
        "Additional properties are not allowed ('protocol' was unexpected)"
    ]


def test_maps_keep_their_value_schema():
    schema = widget_schema()["properties"]["spec"]["properties"]["labels"]
    assert schema["additionalProperties"] == {"type": "string"}
    assert errors(widget_schema(), {"size": 1, "labels": {"x": 1}}) == ["1 is not of type 'string'"]


def test_preserve_unknown_fields_stays_open_but_its_declared_children_do_not():
    schema = widget_schema()
    assert "additionalProperties" not in schema["properties"]["spec"]["properties"]["config"]
    assert "additionalProperties" not in schema["properties"]["status"]
    assert errors(schema, {"size": 1, "config": {"free": 1}}, status={"any": 1}) == []
    assert errors(schema, {"size": 1, "config": {"tuned": {"levle": 1}}}) == [
        "Additional properties are not allowed ('levle' was unexpected)"
    ]


def test_a_bare_object_is_closed_because_the_server_prunes_all_of_it():
    assert errors(widget_schema(), {"size": 1, "opaque": {"x": 1}}) == [
        "Additional properties are not allowed ('x' was unexpected)"
    ]


def test_one_of_branches_are_not_closed():
    schema = widget_schema()["properties"]["spec"]["properties"]["either"]
    assert all("additionalProperties" not in branch for branch in schema["oneOf"])
    assert errors(widget_schema(), {"size": 1, "either": {"b": "2"}}) == []
    assert errors(widget_schema(), {"size": 1, "either": {"c": "2"}}) == [
        "Additional properties are not allowed ('c' was unexpected)",
        "{'c': '2'} is not valid under any of the given schemas",
    ]


def test_nullable_admits_null_only_where_declared():
    assert errors(widget_schema(), {"size": 1, "note": None}) == []
    assert errors(widget_schema(), {"size": None}) == ["None is not of type 'integer'"]


def test_the_input_is_not_modified():
    before = json.dumps(WIDGET, sort_keys=True)
    widget_schema()
    assert json.dumps(WIDGET, sort_keys=True) == before


def test_type_metadata_and_missing_top_level_fields_are_added():
    schema = schemas.crd_json_schemas(
        crd(
            {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                },
            }
        )
    )["widget-example-v1.json"]
    props = schema["properties"]
    assert props["apiVersion"]["enum"] == ["example.questlog.dev/v1"]
    assert props["kind"]["enum"] == ["Widget"]
    assert props["metadata"] == {"type": "object"}
    assert errors(schema, {"size": 1}) == []
    assert errors(schema, {"size": 1}, kind="Gadget") == ["'Gadget' is not one of ['Widget']"]
    assert errors(schema, {"size": 1}, extra=1) == [
        "Additional properties are not allowed ('extra' was unexpected)"
    ]


def test_metadata_is_checked_as_object_meta_when_given():
    meta = {
        OBJECT_META: {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    }
    schema = widget_schema(meta)
    assert schema["properties"]["metadata"] == {"$ref": f"#/definitions/{OBJECT_META}"}
    assert errors(schema, {"size": 1}, metadata={"name": "w", "labels": {"a": "b"}}) == []
    assert errors(schema, {"size": 1}, metadata={"name": "w", "lables": {}}) == [
        "Additional properties are not allowed ('lables' was unexpected)"
    ]


def test_one_file_per_served_version_named_like_kubeconform_asks():
    two = crd(WIDGET, versions=("v1", "v1beta1"))
    assert sorted(schemas.crd_json_schemas(two)) == [
        "widget-example-v1.json",
        "widget-example-v1beta1.json",
    ]
    assert schemas.crd_json_schemas(crd(WIDGET, served=False)) == {}


def test_not_a_crd_is_refused():
    with pytest.raises(ValueError, match="not a CustomResourceDefinition"):
        schemas.crd_json_schemas({"kind": "Deployment", "spec": {}})


def test_object_meta_definitions_takes_the_closure_and_rewrites_refs():
    core = {
        "$defs": {
            OBJECT_META: {
                "properties": {
                    "ownerReferences": {
                        "items": {"$ref": "_definitions.json#/$defs/x.OwnerReference"}
                    },
                    "creationTimestamp": {"$ref": "_definitions.json#/$defs/x.Time"},
                }
            },
            "x.OwnerReference": {"properties": {"uid": {"type": "string"}}},
            "x.Time": {"type": "string"},
            "x.Unrelated": {"type": "string"},
        }
    }
    defs = schemas.object_meta_definitions(core)
    assert sorted(defs) == sorted([OBJECT_META, "x.OwnerReference", "x.Time"])
    assert defs[OBJECT_META]["properties"]["creationTimestamp"] == {"$ref": "#/definitions/x.Time"}
    assert core["$defs"][OBJECT_META]["properties"]["creationTimestamp"]["$ref"].startswith(
        "_definitions.json"
    )


def test_core_refs_are_made_relative_and_nothing_remote_is_left():
    schema = schemas._relative_refs(
        {
            "$id": "https://kubernetes.io/api/deployment/apps/v1",
            "properties": {
                "spec": {"$ref": "/api/_definitions.json#/$defs/a.Spec"},
                "x": {"$ref": "#/$defs/y"},
            },
        }
    )
    assert "$id" not in schema
    assert schema["properties"]["spec"]["$ref"] == "_definitions.json#/$defs/a.Spec"
    assert schema["properties"]["x"]["$ref"] == "#/$defs/y"
    with pytest.raises(schemas.SchemaError, match="unexpected"):
        schemas._relative_refs({"$ref": "https://example.com/s.json"})


def test_a_folder_is_made_once_then_only_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("QUESTLOG_SCHEMAS_DIR", str(tmp_path))
    calls = []

    def make(out, log):
        calls.append(out)
        (out / "a.json").write_text("{}")

    step = schemas._Step("thing", "1.0", "thing 1.0 rev1", make)
    assert step.ensure(log=lambda _: None) == tmp_path / "thing-1.0"
    assert step.ensure(log=lambda _: None) == tmp_path / "thing-1.0"
    assert len(calls) == 1
    assert (tmp_path / "thing-1.0" / "a.json").is_file()
    # a changed recipe (new stamp) rebuilds the folder
    schemas._Step("thing", "1.0", "thing 1.0 rev2", make).ensure(log=lambda _: None)
    assert len(calls) == 2


def test_a_failed_step_is_named_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("QUESTLOG_SCHEMAS_DIR", str(tmp_path))

    def make(out, log):
        (out / "half.json").write_text("{")
        raise OSError("disk full")

    with pytest.raises(schemas.SchemaError, match=r"thing 1\.0: OSError\('disk full'\)"):
        schemas._Step("thing", "1.0", "want", make).ensure(log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_strimzi_java_home_can_be_forced(monkeypatch, tmp_path):
    monkeypatch.setenv("QUESTLOG_STRIMZI_JAVA_HOME", str(tmp_path))
    assert schemas.java_home_for_strimzi() == tmp_path


def test_the_pom_pins_the_same_strimzi_version():
    assert f"<strimzi.version>{schemas.STRIMZI_VERSION}</strimzi.version>" in (
        schemas.POM.read_text()
    )
