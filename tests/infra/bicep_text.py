"""Just enough of Bicep's syntax to check the infra's structure without a Bicep compiler.

No Bicep compiler installs offline here (the CLI is a .NET binary that every packaging
downloads at install time), so the tests read the source: comments are dropped, strings
(including ``${...}`` interpolation and ''' multi-line strings) are skipped when matching
braces, and blocks are located by their declaration line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


def strip_comments(text: str) -> str:
    """Remove // and /* */ comments, keeping strings (which may contain // as in https://)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("'''", i):
            end = text.index("'''", i + 3) + 3
            out.append(text[i:end])
            i = end
        elif text[i] == "'":
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """Index just past the single-quoted string starting at ``start`` (handles \\' and ${...})."""
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "'":
            return i + 1
        if text.startswith("${", i):
            i = _block_end(text, i + 1)
            continue
        i += 1
    raise ValueError(f"unterminated string at {start}")


def _block_end(text: str, open_index: int) -> int:
    """Index just past the bracket matching the one at ``open_index`` ({ or [)."""
    pairs = {"{": "}", "[": "]", "(": ")"}
    stack = [pairs[text[open_index]]]
    i = open_index + 1
    while i < len(text):
        ch = text[i]
        if text.startswith("'''", i):
            i = text.index("'''", i + 3) + 3
            continue
        if ch == "'":
            i = _string_end(text, i)
            continue
        if ch in pairs:
            stack.append(pairs[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced bracket at {open_index}")


def top_level_entries(body: str) -> dict[str, str]:
    """``{ key: value ... }`` -> {key: value text} for the object's own keys (not nested ones)."""
    inner = body.strip()
    assert inner.startswith("{") and inner.endswith("}"), inner[:40]
    text = inner[1:-1]
    entries: dict[str, str] = {}
    i = 0
    key_re = re.compile(r"\s*('(?:[^'\\]|\\.)*'|[A-Za-z_][A-Za-z0-9_]*)\s*:\s*")
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        match = key_re.match(text, i)
        if not match:
            # A bare value (array item) or something unexpected: skip to the line end.
            i = _value_end(text, i)
            continue
        key = match.group(1).strip("'")
        start = match.end()
        end = _value_end(text, start)
        entries[key] = text[start:end].strip()
        i = end
    return entries


def _value_end(text: str, i: int) -> int:
    """End of a value that starts at ``i``: the end of its line, after any brackets it opens."""
    while i < len(text) and text[i] != "\n":
        if text.startswith("'''", i):
            i = text.index("'''", i + 3) + 3
        elif text[i] == "'":
            i = _string_end(text, i)
        elif text[i] in "{[(":
            i = _block_end(text, i)
        else:
            i += 1
    return i


@dataclass(frozen=True)
class Declaration:
    kind: str  # resource | module
    symbol: str
    target: str  # resource type@version, or module path
    condition: str | None
    body: str  # the { ... } text

    @property
    def entries(self) -> dict[str, str]:
        return top_level_entries(self.body)

    def object(self, *path: str) -> dict[str, str]:
        """Nested object entries, e.g. decl.object("properties", "siteConfig")."""
        entries = self.entries
        for key in path:
            entries = top_level_entries(entries[key])
        return entries


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str | None


class BicepFile:
    """Parameters, resources and modules of one .bicep file."""

    _decl_re = re.compile(
        r"^(resource|module)\s+([A-Za-z_][A-Za-z0-9_]*)\s+'([^']+)'\s*(existing\s*)?=\s*(?:if\s*\((.*?)\)\s*)?(\[|\{)",
        re.M,
    )
    _param_re = re.compile(r"^param\s+([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z]+)(?:\s*=\s*(.+))?$", re.M)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = strip_comments(path.read_text(encoding="utf-8"))

    @property
    def params(self) -> dict[str, Param]:
        return {
            m.group(1): Param(m.group(1), m.group(2), (m.group(3) or "").strip() or None)
            for m in self._param_re.finditer(self.text)
        }

    def declarations(self, kind: str | None = None) -> list[Declaration]:
        found = []
        for m in self._decl_re.finditer(self.text):
            open_index = m.end() - 1
            block = self.text[open_index : _block_end(self.text, open_index)]
            if block.startswith("["):  # a loop: [for x in y: { ... }]
                brace = block.index("{")
                block = block[brace : _block_end(block, brace)]
            if kind is None or m.group(1) == kind:
                found.append(Declaration(m.group(1), m.group(2), m.group(3), m.group(5), block))
        return found

    def resources(self, type_prefix: str) -> list[Declaration]:
        return [d for d in self.declarations("resource") if d.target.split("@")[0].lower() == type_prefix.lower()]


def unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value
