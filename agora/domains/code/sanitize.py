"""EvalPlus's post-processing of a completion, rebuilt on Python's own parser: what program a completion scores as.

Why it exists: EvalPlus (the paper's code harness, `evalplus` 0.3.1, the release that pins HumanEval+ v0.1.10 and
MBPP+ v0.2.0) never runs a completion as written. `evalplus.sanitize.sanitize(text, entrypoint)` first cuts out the
longest run of lines that parses, then keeps only the imports and the top-level definitions the entry point
reaches; top-level asserts, prints, `if __name__ == "__main__":` blocks and prose are gone before any test runs.
A harness that runs the first block whole fails a correct function next to a wrong example assert, and passes
nothing EvalPlus would fail. So Agora scores the program this module returns.

EvalPlus walks a tree-sitter tree; this module walks `ast`, and reproduces what the tree-sitter version decides:
- the code: over every pair of lines i < j (so at least two lines), the run `lines[i..j]` that `ast.parse`
  accepts with the most non-blank lines, the first such run on a tie; with none, the first line;
- kept, in this order: every top-level `import` / `from ... import` (not `from __future__`, which tree-sitter
  types apart), then the top-level classes, functions that contain a `return` somewhere, and assignments
  (`x = ...`, `x: T = ...`, not `x += ...`), in source order, each only if its name is new (functions and
  classes named first win) and reachable from the entry point through the identifiers its text mentions
  (names, attributes, keywords, parameters: every identifier token of the definition);
- decorated definitions, `if`/`try`/`for`/`with` blocks and expressions at the top level are dropped;
- an assignment's name is tree-sitter's: its target when that is a plain name, else its value when that is a
  plain name (`a.b = c` is named `c`), else none (never reachable);
- with nothing kept, the longest parsing run itself.
`benchmarks/bench_evalplus_agreement.py` checks this against `evalplus.sanitize` in a venv of its own.
"""
from __future__ import annotations

import ast
from collections import deque

VERSION = 1   # a change here bumps agora/domains/code's VERSION too, which is in every data and evaluation key


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, MemoryError, ValueError, RecursionError):   # ValueError: a null byte
        return False
    return True


def code_extract(text: str) -> str:
    """The run of at least two lines that parses and has the most non-blank lines (the first such); else line 1."""
    lines = text.split("\n")
    filled = [0]
    for line in lines:
        filled.append(filled[-1] + bool(line.strip()))
    best, span = 0, (0, 0)
    for i in range(len(lines)):
        # Only a run with more non-blank lines than the best so far can win, so a parse is tried only for those,
        # longest first: the first one that parses is the best from this i (same answer, far fewer parses).
        for j in range(len(lines) - 1, i, -1):
            if filled[j + 1] - filled[i] <= best:
                break
            if _parses("\n".join(lines[i:j + 1])):
                best = filled[j + 1] - filled[i]
                while j - 1 > i and not lines[j].strip():   # EvalPlus keeps the shortest run with that count
                    j -= 1
                span = (i, j)
                break
    return "\n".join(lines[span[0]:span[1] + 1])


def _identifiers(node: ast.AST) -> set[str]:
    """Every identifier token in a definition's text, as tree-sitter lists them."""
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, ast.keyword) and n.arg:
            out.add(n.arg)
        elif isinstance(n, ast.alias):
            out.update(n.name.split("."))
            if n.asname:
                out.add(n.asname)
        elif isinstance(n, ast.ImportFrom) and n.module:
            out.update(n.module.split("."))
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            out.update(n.names)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            out.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            out.add(n.rest)
        elif isinstance(n, ast.MatchClass):
            out.update(n.kwd_attrs)
    return out


def _has_return(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Return) for n in ast.walk(node))


def _assignment_name(node: ast.Assign | ast.AnnAssign) -> str | None:
    target = node.targets[0] if isinstance(node, ast.Assign) else node.target
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(node, ast.Assign) and len(node.targets) > 1:   # a = b = c: tree-sitter nests the second assignment
        return None
    return node.value.id if isinstance(node.value, ast.Name) else None


def _segment(code: str, lines: list[str], node: ast.AST) -> str:
    text = ast.get_source_segment(code, node)
    return text if text is not None else "\n".join(lines[node.lineno - 1:node.end_lineno])


def sanitize(text: str, entry_point: str | None = None) -> str:
    """The program EvalPlus would run for `text`: imports plus what `entry_point` reaches (see the module doc)."""
    code = code_extract(text)
    try:
        tree = ast.parse(code)
    except (SyntaxError, MemoryError, ValueError, RecursionError):   # only the first-line fallback: nothing to keep
        return code
    imports: list[ast.stmt] = []
    definitions: list[tuple[str | None, ast.stmt]] = []
    names: set[str | None] = set()
    for node in tree.body:
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.module != "__future__"):
            imports.append(node)
            continue
        if isinstance(node, ast.ClassDef) and not node.decorator_list:
            name = node.name
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.decorator_list:
            if not _has_return(node):
                continue
            name = node.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            name = _assignment_name(node)
        else:
            continue
        if name not in names:
            definitions.append((name, node))
            names.add(name)
    if entry_point:
        edges = {name: _identifiers(node) for name, node in definitions}
        reached, queue = {entry_point}, deque([entry_point])
        while queue:
            for nxt in edges.get(queue.popleft(), ()):
                if nxt not in reached:
                    reached.add(nxt)
                    queue.append(nxt)
    lines = code.split("\n")
    kept = [_segment(code, lines, n) for n in imports]
    kept += [_segment(code, lines, n) for name, n in definitions if not entry_point or name in reached]
    out = "\n".join(kept).strip()
    return out or code
