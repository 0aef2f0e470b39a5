"""Reading spec documents: duplicate keys refused, every document placed by file, number and line."""

from __future__ import annotations

import yaml

from schemas.documents import StrictLoader, check, field_line, read


def test_a_key_given_twice_is_refused_with_both_lines() -> None:
    docs, problems = read("kind: Flavor\nspec:\n  vcpus: 1\n  vcpus: 8\n", "f.yaml")
    assert docs == []
    assert [str(p) for p in problems] == [
        "f.yaml: document 1 (line 4): duplicate key 'vcpus' (first given on line 3)"
    ]
    _, problems = read("a: {x: 1, x: 2}\n", "g.yaml")
    assert [p.message for p in problems] == ["duplicate key 'x' (first given on line 1)"]


def test_merge_keys_may_still_be_overridden() -> None:
    text = "base: &b {vcpus: 1, ramMiB: 64}\nflavor:\n  <<: *b\n  vcpus: 2\n"
    assert yaml.load(text, Loader=StrictLoader)["flavor"] == {"vcpus": 2, "ramMiB": 64}


def test_documents_are_numbered_with_empty_ones_counted() -> None:
    text = "kind: A\n---\n---\n# a comment\n\nkind: B\n"
    docs, problems = read(text, "f.yaml")
    assert problems == []
    assert [(d.number, d.line, d.obj) for d in docs] == [
        (1, 1, {"kind": "A"}),
        (3, 6, {"kind": "B"}),
    ]


def test_a_duplicate_spoils_only_its_document_and_broken_yaml_ends_the_file() -> None:
    text = "a: 1\na: 2\n---\nkind: B\n---\nkind: {\n---\nkind: D\n"
    docs, problems = read(text, "f.yaml")
    assert [d.obj for d in docs] == [{"kind": "B"}]
    assert [(p.document, p.line) for p in problems] == [(1, 2), (3, 7)]


def test_problems_sit_on_the_line_of_their_field() -> None:
    text = (
        "apiVersion: desired/v1\n"
        "kind: SecurityGroup\n"
        "metadata: {name: web, project: demo}\n"
        "spec:\n"
        "  rules:\n"
        "    - {direction: ingress, protocol: tcp}\n"
        "    - direction: sideways\n"
        "      protocol: tcp\n"
    )
    (doc,), _ = read(text, "sg.yaml")
    assert field_line(doc.node, "spec.rules[1].direction") == 7
    assert field_line(doc.node, "spec.rules[0]") == 6
    assert field_line(doc.node, "spec.nothing.here") == 4
    assert field_line(doc.node, "metadata.labels.a.b") == 3
    assert [str(p) for p in check(doc)] == [
        'sg.yaml: document 1 (line 7): spec.rules[1].direction: must be one of: ingress, egress (got "sideways")'
    ]


def test_wrong_api_version_and_unknown_kind_say_so() -> None:
    docs, _ = read("apiVersion: v2\nkind: Flavor\n---\nkind: Volume\nmetadata: {name: v}\n", "x")
    assert [str(p) for d in docs for p in check(d)] == [
        "x: document 1 (line 1): unknown apiVersion 'v2'; desired serves desired/v1",
        "x: document 2 (line 4): unknown kind 'Volume'; known kinds: Aggregate, Flavor, "
        "FloatingIP, GitSource, Host, Image, Instance, KeyPair, MetadefNamespace, Network, "
        "Project, Quota, QuotaClass, Role, SecurityGroup, ServerGroup, User",
    ]
