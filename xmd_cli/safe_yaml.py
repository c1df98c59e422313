"""Reading YAML a user hands us: no code, bounded aliases and nesting, clear errors, key lines.

Recipes and `--set` values are parsed with a `yaml.SafeLoader` (no executable tags),
after checks that keep a hostile or broken file from hanging or crashing xmd: the
bytes must be UTF-8 (an error names the byte and its offset), flow brackets may not
nest past a depth PyYAML handles quickly, and the alias graph may not expand past a
bound. `key_lines` maps each key path to its line for error messages.
"""

from __future__ import annotations

from typing import Any

import yaml

from xmd_cli.errors import XmdError


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no executable tags) that also remembers where each key stands."""


# A recipe is a few hundred values, four or five levels deep. Aliases share one node
# among many places, so a few lines (`a: &a [x, x]`, `b: &b [*a, *a]`, ...) can stand
# for billions of values that validation, --set and the key-line map would each walk;
# the expanded size is therefore counted on the node graph (each node once) and
# refused past these bounds, before anything walks the expanded document.
MAX_NODES = 100_000
MAX_DEPTH = 32


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Nodes of the document with every alias expanded, counted with one visit per node.

    Raises XmdError past MAX_NODES or MAX_DEPTH, or when an alias refers to a node that
    contains it (the document would be infinite).
    """
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    open_nodes: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in open_nodes:
            raise XmdError(f"{source}:{node.start_mark.line + 1}: an alias refers to the section that contains it, "
                           "so the recipe never ends; write the values out instead")
        if key not in sizes:
            if depth > MAX_DEPTH:
                raise XmdError(f"{source}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep; "
                               "a recipe has at most a few levels: check the indentation and brackets")
            open_nodes.add(key)
            children = _children(node)
            measured = [visit(child, depth + 1) for child in children]
            open_nodes.discard(key)
            sizes[key] = (1 + sum(m[0] for m in measured), 1 + max((m[1] for m in measured), default=0))
        size, height = sizes[key]
        if depth + height - 1 > MAX_DEPTH:
            raise XmdError(f"{source}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep "
                           "(through aliases); write the values out instead")
        if size > MAX_NODES:
            raise XmdError(f"{source}:{node.start_mark.line + 1}: aliases expand to more than {MAX_NODES:,} values "
                           "(an alias bomb, or a recipe far larger than any xmd reads); write the values out "
                           "instead of nesting aliases")
        return size, height

    return visit(root, 1)[0]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def decode(data: bytes, source: str) -> str:
    """UTF-8 text of a recipe; a bad byte is an error naming its offset and line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise XmdError(f"{source}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at byte offset {e.start}); "
                       "save the recipe as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.yaml > out.yaml`") from None


def _check_flow_depth(text: str, source: str) -> None:
    """Refuse flow brackets ([ {) nested past MAX_DEPTH before PyYAML scans them.

    PyYAML's scanner does work proportional to the open brackets at every token, so
    thousands of nested brackets take seconds before any error; counting them here
    is one pass. Brackets inside quotes and comments do not count.
    """
    depth, quote, line, previous = 0, "", 1, "\n"
    in_comment = False
    for char in text:
        if char == "\n":
            line, in_comment = line + 1, False
        elif in_comment:
            pass
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and previous in " \t\n[{,:":  # a quoted scalar begins
            quote = char
        elif char == "#" and previous in " \t\n":
            in_comment = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise XmdError(f"{source}:{line}: nested more than {MAX_DEPTH} levels deep; a recipe has at most "
                               "a few levels: check the brackets")
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The value of one YAML document and its node graph, with alias expansion and depth bounded."""
    _check_flow_depth(text, source)
    loader = _LineLoader(text)  # a SafeLoader subclass: no executable tags
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _expanded_size(node, source)
        return loader.construct_document(node), node
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise XmdError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except RecursionError:
        # PyYAML composes nested nodes recursively: a few hundred open brackets exhaust the stack.
        raise XmdError(f"{source}: nested too deeply to parse (hundreds of levels); a recipe has at most a few "
                       "levels: check the brackets and indentation") from None
    finally:
        loader.dispose()


def key_lines(root: yaml.Node | None) -> dict[tuple, int]:
    """Map each key path in a YAML node graph to its 1-based line, for error messages.

    A node shared through an alias is walked once, at its first path: the paths that
    reach it through the alias fall back to the alias key's line. (Walking every path
    would cost the alias-expanded size.)
    """
    lines: dict[tuple, int] = {}
    seen: set[int] = set()

    def walk(node, path):
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*path, key_node.value)
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return lines
