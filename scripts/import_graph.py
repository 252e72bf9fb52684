#!/usr/bin/python3
"""The import graph's layers: which source folder includes from which, computed from the
`#include "..."` lines.

  scripts/import_graph.py [--root DIR]

Prints a Markdown table (folder, its layer, the folders it includes from) and exits with status
1 when the folders include each other in a cycle (each cycle is printed). A folder's layer is 0
when it includes from no other folder, else one more than the highest layer it includes from;
so a folder only ever includes from lower layers. Folders: harness/<name>, harness (its own
top-level headers), methods, datasets (and datasets/spm_shim), bench, tests/<name>.
"""
import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
SOURCE_SUFFIXES = (".cpp", ".cc", ".h", ".hpp")
TOP_FOLDERS = ("harness", "methods", "datasets", "bench", "tests")


def folder_of(path):
    """The folder a file counts in: its parent folder below the repository root."""
    parent = os.path.dirname(path)
    return parent if parent else "."


def graph(root):
    edges = {}
    for top in TOP_FOLDERS:
        for dirpath, dirs, files in os.walk(os.path.join(root, top)):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                src = folder_of(path)
                edges.setdefault(src, set())
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for inc in INCLUDE.findall(text):
                    if not os.path.exists(os.path.join(root, inc)):
                        continue  # a header next to the file, or a generated one
                    dst = folder_of(inc)
                    if dst != src:
                        edges[src].add(dst)
    for targets in list(edges.values()):
        for t in targets:
            edges.setdefault(t, set())
    return edges


def cycles(edges):
    """Strongly connected components with more than one folder (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layers(edges):
    layer = {}

    def depth(v, seen=()):
        if v in layer:
            return layer[v]
        if v in seen:
            return 0  # a cycle: reported separately
        d = 0
        for w in edges[v]:
            d = max(d, depth(w, seen + (v,)) + 1)
        layer[v] = d
        return d

    for v in edges:
        depth(v)
    return layer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    edges = graph(root)
    layer = layers(edges)
    print("| layer | folder | includes from |")
    print("| ---: | --- | --- |")
    for v in sorted(edges, key=lambda v: (layer[v], v)):
        deps = ", ".join(sorted(edges[v])) if edges[v] else "(none)"
        print(f"| {layer[v]} | {v} | {deps} |")
    found = cycles(edges)
    for c in found:
        print("cycle: " + " <-> ".join(c), file=sys.stderr)
    if not found:
        print("\nNo cycles: every folder includes only from lower layers.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
