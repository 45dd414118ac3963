#!/usr/bin/env python3
"""Fails when a folder includes a folder above it, or folders include each other.

The layers, lowest first, are listed below (docs/architecture.md, "Layers", says the
same). A file may include headers of its own folder and of lower layers only; since
every edge must point down, no folder-level cycle can exist.

Usage: scripts/check_layers.py [ROOT]     (prints every violation; exit 1 if any)
"""
import os
import re
import sys
from collections import defaultdict

# Lowest first. Folders on one line are one layer and must not include each other.
LAYERS = [
    ["pyhost"],        # the public API: headers only, pure C++ types
    ["bindings"],      # the C-API layer: thread states, conversions, errors, CPython internals
    ["policy"],        # policies and limits as data
    ["modules"],       # Python that runs inside interpreters, and its typed C++ wrapper
    ["audit_hooks"],   # per-interpreter enforcement state and the PEP 578 hook
    ["guards"],        # hardening, shared-type guards, watchdog, limits enforcement
    ["embed"],         # runtime, interpreters, pool, execution, in-process isolation
    ["protocol"],      # JSON forms of requests and outcomes (one codec)
    ["worker"],        # process isolation
    ["host"],          # the Host: one request skeleton over every isolation mode
    ["cli"],           # the pyhost command
    ["tests", "benchmarks", "examples"],
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/[^"]+"', re.M)


def main(root):
    rank = {folder: i for i, layer in enumerate(LAYERS) for folder in layer}
    edges = defaultdict(set)
    problems = []
    for folder in rank:
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            for name in files:
                if not name.endswith((".h", ".cc", ".c")):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for target in INCLUDE.findall(text):
                    if target not in rank or target == folder:
                        continue
                    edges[folder].add(target)
                    if rank[target] >= rank[folder]:
                        problems.append("%s includes %s/ (layer %d includes layer %d)" % (
                            os.path.relpath(path, root), target, rank[folder], rank[target]))
    for problem in sorted(problems):
        print("check_layers: " + problem)
    print("check_layers: %d folders, %d folder-level edges, %d violations" % (
        len(rank), sum(len(v) for v in edges.values()), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else
                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")))
