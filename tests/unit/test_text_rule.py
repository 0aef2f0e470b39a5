"""The one text rule (schemas.text) and Nova's names (schemas.names), as properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas
from schemas.names import printable_name
from schemas.requests import check_request
from schemas.text import unstorable, unstorable_reason
from state.errors import Invalid
from state.store import spec_bytes

#: any code point, lone surrogates and NUL included
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)


def _storable(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@given(any_text)
def test_a_string_is_storable_exactly_when_utf8_without_nul(text: str) -> None:
    assert (unstorable_reason(text) is None) == _storable(text)


@given(json_values)
def test_every_unstorable_string_is_found(value: object) -> None:
    bad: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            bad.extend([node] if not _storable(node) else [])
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(value)
    assert len(unstorable(value)) == len(bad)


@given(json_values)
def test_the_store_refuses_exactly_what_sql_cannot_keep(value: object) -> None:
    obj = {"kind": "Flavor", "metadata": {"name": "f"}, "spec": {"x": value}}
    if unstorable(value):
        with pytest.raises(Invalid) as caught:
            spec_bytes(obj)
        assert all(e.path.startswith("spec.x") for e in caught.value.errors)
    else:
        assert json.loads(spec_bytes(obj)) == obj


@pytest.mark.parametrize("bad", ["fz\ud800x", "nul\x00", "\udfff"])
def test_an_instance_with_unstorable_text_is_invalid_by_field(bad: str) -> None:
    obj = {
        "kind": "Instance",
        "metadata": {"name": "a", "project": "p", "annotations": {"note": bad}},
        "spec": {"flavor": "m", "image": "i", "tags": [bad]},
    }
    with pytest.raises(schemas.SchemaError) as caught:
        schemas.validate(obj)
    paths = {p for p, _ in caught.value.errors}
    assert {"metadata.annotations.note", "spec.tags[0]"} <= paths


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("web 1", True),
        ("наш сервер", True),
        ("emoji \U0001f600", True),
        (" lead", False),
        ("trail\u3000", False),
        ("tab\tin", False),
        ("rtl\u202emark", False),
        ("line\u2028sep", False),
        ("bell\x07", False),
        ("", True),
    ],
)
def test_names_are_printable_as_nova_says(name: str, ok: bool) -> None:
    assert printable_name(name) is ok


def test_a_compute_body_with_a_poison_name_is_refused_with_novas_words() -> None:
    base = {"flavorRef": "1", "imageRef": "x", "networks": "none"}
    err = check_request("servers.create", (2, 47), {"server": {**base, "name": "fz\ud800x"}})
    assert err is not None and err.field == "name" and "surrogate" in err.message
    err = check_request("servers.create", (2, 47), {"server": {**base, "name": "a\x07b"}})
    assert err is not None and err.message.startswith("An invalid 'name' value was provided.")
    assert check_request("servers.create", (2, 47), {"server": {**base, "name": "ok é"}}) is None


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_numbers_json_cannot_write_are_refused(number: float) -> None:
    obj = {"kind": "Flavor", "metadata": {"name": "f"}, "spec": {"hints": {"x": [number]}}}
    with pytest.raises(Invalid) as caught:
        spec_bytes(obj)
    assert [e.path for e in caught.value.errors] == ["spec.hints.x[0]"]
