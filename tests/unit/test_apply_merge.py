"""The three-way merge of server-side apply, selectors, keys and config: pure code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state import config, keys, selectors
from state.apply import LAST_APPLIED, applied_config, merged, new_object, prune_candidates
from state.envelope import Ref
from state.errors import BadRequest

scalars = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans())
fields = st.dictionaries(st.sampled_from("abcdef"), scalars, max_size=5)
specs = st.dictionaries(
    st.sampled_from("abcdef"), st.one_of(scalars, fields, st.lists(scalars, max_size=3)), max_size=5
)


def obj(spec: dict, labels: dict | None = None) -> dict:
    return {
        "apiVersion": "desired/v1",
        "kind": "Flavor",
        "metadata": {"name": "f", "labels": labels or {}},
        "spec": spec,
    }


@given(specs, specs)
def test_apply_result_holds_exactly_what_the_config_sets(first: dict, second: dict) -> None:
    live = new_object(applied_config(obj(first)))
    after = merged(live, applied_config(obj(second)))
    # every field of the new config is there, as given
    for k, v in second.items():
        if isinstance(v, dict) and isinstance(first.get(k), dict):
            for kk, vv in v.items():
                assert after["spec"][k][kk] == vv
        else:
            assert after["spec"][k] == v
    # fields only in the old config are gone
    for k in first:
        if k not in second:
            assert k not in after["spec"]


@given(specs, specs)
def test_apply_is_idempotent(first: dict, second: dict) -> None:
    live = new_object(applied_config(obj(first)))
    once = merged(live, applied_config(obj(second)))
    twice = merged(once, applied_config(obj(second)))
    assert once == twice


@given(specs, specs, st.sampled_from("uvwxyz"), scalars)
def test_fields_of_other_writers_survive(
    first: dict, second: dict, key: str, value: object
) -> None:
    live = new_object(applied_config(obj(first)))
    live["spec"][key] = value  # written by another API, not by apply
    after = merged(live, applied_config(obj(second)))
    assert after["spec"][key] == value


def test_labels_merge_and_last_applied_is_recorded() -> None:
    live = new_object(applied_config(obj({"vcpus": 1}, {"app": "web", "tier": "db"})))
    live["metadata"]["labels"]["owner"] = "ops"
    after = merged(live, applied_config(obj({"vcpus": 1}, {"app": "web"})))
    assert after["metadata"]["labels"] == {"app": "web", "owner": "ops"}
    recorded = json.loads(after["metadata"]["annotations"][LAST_APPLIED])
    assert recorded["metadata"]["labels"] == {"app": "web"}
    assert LAST_APPLIED not in recorded["metadata"].get("annotations", {})


def test_prune_picks_only_applied_objects_left_out() -> None:
    applied = new_object(applied_config(obj({})))
    made_by_api = obj({})
    made_by_api["metadata"]["name"] = "api"
    gone = new_object(applied_config(obj({})))
    gone["metadata"]["name"] = "gone"
    chosen = prune_candidates([applied, made_by_api, gone], {Ref("Flavor", None, "f")})
    assert chosen == [Ref("Flavor", None, "gone")]


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("env in (a, b),tier", {"env": "b", "tier": "x"}, True),
        ("env notin (a,b)", {"env": "a"}, False),
        ("!legacy", {"legacy": "1"}, False),
        ("owner", {}, False),
    ],
)
def test_selectors(text: str, labels: dict, expected: bool) -> None:
    sel = selectors.parse(text)
    assert sel is not None
    assert sel.matches({"metadata": {"labels": labels}}) is expected


def test_bad_selector_says_what_is_expected() -> None:
    with pytest.raises(BadRequest, match="expected key=value"):
        selectors.parse("app=web,=x")


def test_key_layout_round_trips() -> None:
    k = keys.spec("Instance", "demo", "vm1")
    assert k == b"/desired/v1/spec/instance/demo/vm1"
    assert keys.parse_object_key(keys.status_for_spec(k)) == ("status", "instance", "demo", "vm1")
    assert keys.parse_object_key(keys.spec("Flavor", None, "m1")) == ("spec", "flavor", None, "m1")
    with pytest.raises(ValueError):
        keys.parse_object_key(b"/desired/v1/hosts/h1")


def test_config_file_then_environment(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("etcd:\n  url: http://127.0.0.1:1\napi:\n  port: 9000\n")
    cfg = config.load(f, env={"DESIRED_API_PORT": "9100", "DESIRED_DATA_DIR": str(tmp_path)})
    assert cfg.etcd.url == "http://127.0.0.1:1"
    assert cfg.api.port == 9100
    assert cfg.data_dir == tmp_path
    assert cfg.sql_url() == f"sqlite:///{tmp_path / 'desired.sqlite'}"


def test_config_rejects_unknown_settings_and_bad_types(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("etcd:\n  uri: x\n")
    with pytest.raises(BadRequest, match=r"unknown setting.*uri.*known: url"):
        config.load(f, env={})
    with pytest.raises(BadRequest, match="DESIRED_API_PORT: expected int"):
        config.load(None, env={"DESIRED_API_PORT": "eighty"})
