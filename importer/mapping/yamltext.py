"""Reading a mapping's YAML into plain Python values, keeping the line of every key and item.

YAML details: only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay text,
so ``map: {no: declined}`` means the word "no"), dates stay text, ``<<`` and ``=`` are plain
text, a key given twice is an error, and a mapping is plain data: a tag other than YAML's core
``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``, ``!!seq`` and ``!!map``
(``!!python/...``, ``!!binary``, ``!!set``, a local ``!tag``), on a text, a list or a mapping,
is an error naming its line.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import yaml

from importer.errors import InputError
from importer.mapping.schema import KeyPath

Lines = dict[KeyPath, int]  # where each key and list item of the document is (1-based)
Problems = list[tuple[int, str]]  # (line, message)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (yes/no/on/off stay text) and dates kept as text."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# "<<" and "=" resolve to YAML 1.1's merge and value tags, which nothing here constructs: as
# keys or values they are plain text
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":merge", ":value"))]
    for first, resolvers in _LineLoader.yaml_implicit_resolvers.items()
}

_CORE = "tag:yaml.org,2002:"
_MAX_VALUES = 100_000  # a real mapping holds a few hundred
# A mapping is plain data: any other tag (python/..., binary, set, a local !tag) is refused
# by name, whether it sits on a text, a list or a mapping, before anything is constructed.
_PLAIN_TAGS: dict[type[yaml.Node], frozenset[str]] = {
    yaml.ScalarNode: frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null")),
    yaml.SequenceNode: frozenset({_CORE + "seq"}),
    yaml.MappingNode: frozenset({_CORE + "map"}),
}


class YamlDocument(NamedTuple):
    data: Any  # plain values: dict, list, str, int, float, bool, None
    lines: Lines
    problems: Problems  # what YAML itself lets pass: a key given twice, a key that is no text
    refused: Problems  # tags that are not plain data: reported alone, before any other check


def read_yaml(text: str, name: str) -> YamlDocument:
    """The document with its lines; InputError for text that is no YAML or has no document."""
    loader = _LineLoader(text)
    builder = _Builder(loader, name)
    try:
        root = loader.get_single_node()
        if root is None:
            raise InputError(f"{name} is empty: write a mapping (see mappings/example.yaml)")
        builder.lines[()] = root.start_mark.line + 1
        data = builder.build(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        raise InputError(
            f"{name}: {where}: not valid YAML: {exc.problem or exc.context} "
            "(check the indentation and the quotes)"
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return YamlDocument(data, builder.lines, builder.problems, builder.refused)


class _Builder:
    """Builds plain values from the loader's nodes, noting lines and problems on the way."""

    def __init__(self, loader: _LineLoader, name: str) -> None:
        self.loader = loader
        self.name = name
        self.lines: Lines = {}
        self.problems: Problems = []
        self.refused: Problems = []
        self.built = 0

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.built += 1
        if self.built > _MAX_VALUES:  # aliases of aliases ("billion laughs") expand exponentially
            raise InputError(
                f"{self.name}: line {node.start_mark.line + 1}: the mapping expands to more "
                f"than {_MAX_VALUES:,} values (YAML aliases repeated inside each other?): "
                "write the entries out"
            )
        tag_problem = _tag_problem(node)
        if tag_problem is not None:
            self.refused.append((node.start_mark.line + 1, tag_problem))
            if isinstance(node, yaml.ScalarNode):
                return node.value  # never constructed: the load fails on the problem anyway
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, index)))
            return items
        try:
            return self.loader.construct_object(node)
        except (ValueError, KeyError):  # "!!int abc": PyYAML's int() or its bool table refuses
            self.refused.append(
                (node.start_mark.line + 1, f"{node.value!r} is not {_tag_name(node)}")
            )
            return node.value

    def mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append((line, "a key must be plain text"))
                continue
            key = key_text(self.build(key_node, path))
            if key in out:
                first = self.lines[(*path, key)]
                self.problems.append((line, f"'{key}' is given twice (also on line {first})"))
                continue
            self.lines[(*path, key)] = line
            out[key] = self.build(value_node, (*path, key))
        return out


def _tag_problem(node: yaml.Node) -> str | None:
    """Why the node's tag is refused, None for a plain one."""
    if node.tag in _PLAIN_TAGS[type(node)]:
        return None
    shown = "!!" + node.tag.removeprefix(_CORE) if node.tag.startswith(_CORE) else node.tag
    return (
        f"the YAML tag '{shown}' is not allowed: a mapping holds plain texts, numbers, "
        "true/false, lists and key: value pairs; remove the tag"
    )


def _tag_name(node: yaml.Node) -> str:
    kinds = {"int": "a whole number", "float": "a number", "bool": "true or false"}
    return kinds.get(node.tag.removeprefix(_CORE), "a value")


def key_text(key: Any) -> str:
    """A YAML key (or a value shown as one) as the text the mapping compares: true, null, 12."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


def line_of(lines: Lines, path: KeyPath) -> int:
    """The line of ``path``, or of its nearest parent that has one."""
    while path not in lines:
        path = path[:-1]
    return lines[path]
