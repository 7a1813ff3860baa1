"""YAML from people (config.yaml, import manifests), read with bounded work.

PyYAML's safe loader shares an anchored node between its aliases, so a few hundred bytes of
nested aliases (a "billion laughs" bomb) load into a tiny object graph that explodes the
moment anything walks it (str(), repr() in an error message, a deep copy). Deeply nested
flow collections exhaust the recursion limit of the composer. So the loader here counts, while
composing, the nodes the document would have with every alias expanded and the nesting depth,
and refuses the document with one line the moment either passes its cap. (Callers read the
file with files.read_capped, so its size is capped too.)
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 50  # nesting of mappings and lists
MAX_NODES = 1_000_000  # nodes once every alias is expanded


class YamlLimitError(yaml.YAMLError):
    """The document is over a cap; ``problem`` says which (the same attribute PyYAML's own
    errors carry, so callers report both alike)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = None


class _CappedLoader(yaml.SafeLoader):
    def __init__(self, stream: str, max_nodes: int, max_depth: int):
        super().__init__(stream)
        self._max_nodes = max_nodes
        self._max_depth = max_depth
        self._nodes = 0  # expanded node count so far
        self._depth = 0
        self._weight: dict[int, int] = {}  # id(node) -> its expanded node count

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's
        # The scanner's work per token grows with the flow depth: refuse `[[[[...` here,
        # before the composer ever sees it.
        if self.flow_level >= self._max_depth:
            raise YamlLimitError(f"nested more than {self._max_depth} levels deep")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._count(self._weight.get(id(node), 1))
            return node
        self._depth += 1
        if self._depth > self._max_depth:
            raise YamlLimitError(f"nested more than {self._max_depth} levels deep")
        before = self._nodes
        self._count(1)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._weight[id(node)] = self._nodes - before
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # PyYAML keeps the last of a key given twice: a second `storage:` block would silently
        # drop the first. Merge keys (<<) may still bring keys the mapping then overrides.
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if (key_node.tag, key_node.value) in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f"the key '{key_node.value}' is given twice in one mapping",
                    problem_mark=key_node.start_mark,
                )
            seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: Any) -> Any:
        # PyYAML raises a bare ValueError for a date-shaped scalar that is no date
        # (2030-02-30, an offset of +25:00): keep the text, so the caller's check names it.
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)

    def _count(self, n: int) -> None:
        self._nodes += n
        if self._nodes > self._max_nodes:
            raise YamlLimitError(
                f"more than {self._max_nodes:,} values once its aliases are expanded"
            )


_CappedLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _CappedLoader.construct_yaml_timestamp
)


class _TextLoader(_CappedLoader):
    """Every scalar but null is the text as typed: YAML 1.1 would read `NO` as false, `10:00`
    as 600 and `007` as 7, and a meme would show FALSE where its editor typed NO."""


def _as_typed(loader: _TextLoader, node: Any) -> Any:
    return loader.construct_scalar(node)


for _tag in ("bool", "int", "float", "timestamp"):
    _TextLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _as_typed)


def load(
    text: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH, as_typed: bool = False
) -> Any:
    """yaml.safe_load with caps; YamlLimitError (a yaml.YAMLError) when one is passed. With
    ``as_typed`` every scalar but null is a string, exactly as typed (words people write)."""
    loader = (_TextLoader if as_typed else _CappedLoader)(text, max_nodes, max_depth)
    try:
        return loader.get_single_data()
    except RecursionError:  # a cap above the interpreter's limit; never a traceback
        raise YamlLimitError("nested too deeply") from None
    finally:
        loader.dispose()

