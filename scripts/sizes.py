#!/usr/bin/env python3
"""The largest modules and functions of the shipped package (tests and migrations left out).

    scripts/sizes.py [--top N] [--json FILE] [ROOT]

A function's size is its line span, decorators included; a method counts on its own and also
inside its class, which is listed separately.
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import sys


def shipped(root: pathlib.Path) -> list[pathlib.Path]:
    out = []
    for p in sorted((root / "casereach").rglob("*.py")):
        parts = p.relative_to(root).parts
        if "tests" in parts or "migrations" in parts or p.name.startswith("test_"):
            continue
        out.append(p)
    return out


def measure(root: pathlib.Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]], list[tuple[int, str]]]:
    modules, functions, classes = [], [], []
    for p in shipped(root):
        text = p.read_text(encoding="utf-8")
        rel = str(p.relative_to(root))
        modules.append((len(text.splitlines()), rel))
        tree = ast.parse(text)
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    span = (child.end_lineno or child.lineno) - start + 1
                    name = f"{prefix}{child.name}"
                    bucket = classes if isinstance(child, ast.ClassDef) else functions
                    bucket.append((span, f"{rel}:{child.lineno} {name}"))
                    stack.append((child, name + "."))
                else:
                    stack.append((child, prefix))
    for bucket in (modules, functions, classes):
        bucket.sort(key=lambda t: (-t[0], t[1]))
    return modules, functions, classes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default=str(pathlib.Path(__file__).resolve().parent.parent))
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    modules, functions, classes = measure(pathlib.Path(args.root))
    for title, bucket in (("modules", modules), ("functions", functions), ("classes", classes)):
        print(f"## largest {title} (lines)")
        for n, name in bucket[: args.top]:
            print(f"{n:6}  {name}")
        print()
    print(f"modules over 500 lines: {sum(1 for n, _ in modules if n > 500)}")
    print(f"functions over 80 lines: {sum(1 for n, _ in functions if n > 80)}")
    if args.json:
        data = {"modules": modules, "functions": functions, "classes": classes}
        pathlib.Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
