"""Schemas: every kind's example validates; errors name the field and what was expected."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import schemas

EXAMPLES = list(
    yaml.safe_load_all((Path(__file__).parents[2] / "fixtures/specs/examples.yaml").read_text())
)


def example(kind: str) -> dict:
    return copy.deepcopy(next(d for d in EXAMPLES if d["kind"] == kind))


def errors_of(obj: dict) -> list[tuple[str, str]]:
    with pytest.raises(schemas.SchemaError) as info:
        schemas.validate(obj)
    return info.value.errors


def test_examples_cover_every_kind_and_validate() -> None:
    assert sorted({d["kind"] for d in EXAMPLES}) == sorted(schemas.KINDS)
    for doc in EXAMPLES:
        schemas.validate(doc)


def test_missing_and_wrong_typed_fields() -> None:
    flavor = example("Flavor")
    del flavor["spec"]["ramMiB"]
    flavor["spec"]["vcpus"] = "many"
    assert errors_of(flavor) == [
        ("spec.ramMiB", "is required"),
        ("spec.vcpus", 'expected integer, got string "many"'),
    ]


def test_unknown_field_lists_allowed_ones() -> None:
    kp = example("KeyPair")
    kp["spec"]["pubkey"] = "x"
    [(path, message)] = errors_of(kp)
    assert path == "spec.pubkey"
    assert message.startswith("unknown field (allowed: displayName, fingerprint, publicKey, type)")


def test_nested_list_paths_and_ranges() -> None:
    sg = example("SecurityGroup")
    sg["spec"]["rules"][1].update(portRangeMin=70000)
    sg["spec"]["rules"][2].update(protocol="tcpx", remoteCidr="10.0.0.0/8")
    errs = dict(errors_of(sg))
    assert errs["spec.rules[1].portRangeMin"] == "must be at most 65535 (got 70000)"
    assert errs["spec.rules[2].protocol"].startswith("must be one of: tcp, udp, icmp, any")
    assert errs["spec.rules[2]"] == "must not set both remoteCidr and remoteGroup"


def test_formats_and_enums() -> None:
    net = example("Network")
    net["spec"]["cidr"] = "10.0.0.0/33"
    inst = example("Instance")
    inst["spec"]["powerState"] = "asleep"
    assert errors_of(net) == [
        (
            "spec.cidr",
            "must be an IPv4 network in CIDR notation without host bits, like 10.0.0.0/24"
            ' (got "10.0.0.0/33")',
        )
    ]
    assert errors_of(inst) == [
        ("spec.powerState", 'must be one of: running, stopped, paused, suspended (got "asleep")')
    ]


def test_scope_rules() -> None:
    inst = example("Instance")
    del inst["metadata"]["project"]
    flavor = example("Flavor")
    flavor["metadata"]["project"] = "demo"
    assert errors_of(inst) == [("metadata.project", "is required: Instance is project-scoped")]
    assert errors_of(flavor) == [("metadata.project", "must be absent: Flavor is cluster-scoped")]
    image = example("Image")
    image["metadata"]["project"] = "demo"
    schemas.validate(image)  # images may be either


def test_unknown_kind_and_api_version_list_known_ones() -> None:
    with pytest.raises(schemas.UnknownKindError) as info:
        schemas.validate({"apiVersion": "desired/v1", "kind": "Volume", "metadata": {"name": "v"}})
    assert "Flavor" in str(info.value) and "Instance" in str(info.value)
    with pytest.raises(schemas.UnknownKindError, match="desired/v1"):
        schemas.validate(dict(example("Flavor"), apiVersion="v2"))


def test_defaults_fill_nested_objects() -> None:
    spec = schemas.apply_defaults("Host", {"allocationRatios": {"cpu": 4.0}})
    assert spec["allocationRatios"] == {"cpu": 4.0, "ram": 1.5, "disk": 1.0}
    assert spec["zone"] == "nova" and spec["enabled"] is True
    rules = schemas.apply_defaults("SecurityGroup", {"rules": [{"direction": "egress"}]})["rules"]
    assert rules == [{"direction": "egress", "ethertype": "IPv4", "protocol": "any"}]


def test_labels_follow_kubernetes_rules() -> None:
    flavor = example("Flavor")
    flavor["metadata"]["labels"] = {"bad key!": "x", "ok": "v" * 64}
    paths = [p for p, _ in errors_of(flavor)]
    assert "metadata.labels" in paths and "metadata.labels.ok" in paths


flavor_specs = st.fixed_dictionaries(
    {
        "vcpus": st.integers(1, 1024),
        "ramMiB": st.integers(1, 10**7),
        "diskGiB": st.integers(0, 10**5),
    },
    optional={
        "isPublic": st.booleans(),
        "extraSpecs": st.dictionaries(
            st.from_regex(r"[A-Za-z0-9_:.-][A-Za-z0-9_:. -]{0,9}", fullmatch=True),
            st.text(
                st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=10
            ),
        ),
    },
)


@given(flavor_specs)
def test_generated_flavors_validate(spec: dict) -> None:
    schemas.validate(
        {"apiVersion": "desired/v1", "kind": "Flavor", "metadata": {"name": "f"}, "spec": spec}
    )


@given(flavor_specs, st.sampled_from(["vcpus", "ramMiB", "diskGiB"]), st.text(max_size=5))
def test_a_wrong_typed_field_is_named(spec: dict, field: str, junk: str) -> None:
    spec = dict(spec, **{field: junk})
    obj = {"apiVersion": "desired/v1", "kind": "Flavor", "metadata": {"name": "f"}, "spec": spec}
    assert f"spec.{field}" in [p for p, _ in errors_of(obj)]


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-70000, 70000),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from(["10.0.0.1", "10.0.0.0/24", "tcp", "ingress", "running"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)


@given(st.sampled_from(EXAMPLES), st.data())
def test_fast_path_and_full_validator_agree(doc: dict, data: st.DataObject) -> None:
    """The fast path (compiled check) accepts exactly what jsonschema accepts."""
    obj = copy.deepcopy(doc)
    spec = obj["spec"]
    field = data.draw(st.sampled_from([*sorted(spec), "unknownField"]))
    spec[field] = data.draw(junk)
    compiled = schemas._compiled(obj["kind"], "object")
    fast_ok = not compiled.errors(obj)  # the compiled check, falling back when it must
    full_ok = not list(compiled.full.iter_errors(obj))
    assert fast_ok == full_ok, (field, spec[field])


def test_validation_never_changes_its_input() -> None:
    for doc in EXAMPLES:
        before = copy.deepcopy(doc)
        schemas.validate(doc)
        assert doc == before
