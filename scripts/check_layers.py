#!/usr/bin/env python3
"""Fails when a source file includes a header of a folder above its own.

The folders are layers, lowest first (docs/architecture.md, "Layers"); a file may
include headers of its own folder and of the folders below it, so no two folders
can include each other. The public headers (pyhost/) include only each other and
no Python or pybind11 header: consumers of the installed library never see them.
examples/ uses only the public headers. tests/ and benchmarks/ may use anything.

Usage: scripts/check_layers.py [ROOT]   (default: the repository this script is in)
"""
import os
import re
import subprocess
import sys

LAYERS = ["pyhost", "bindings", "policy", "modules", "audit_hooks", "guards", "process", "embed",
          "worker", "protocol", "cli"]
# What a folder may include beyond the layers below it.
ONLY = {"pyhost": {"pyhost"}, "examples": {"pyhost"}}
ANYTHING = {"tests", "benchmarks"}
HIDDEN_FROM_CONSUMERS = re.compile(r"^(Python\.h|pybind11/|internal/pycore)")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


SUFFIXES = ("*.h", "*.hpp", "*.inc", "*.c", "*.cc", "*.cpp")


def sources(root):
    """Tracked and untracked (not ignored) sources: a new file is checked before it is added."""
    listed = subprocess.run(["git", "-C", root, "ls-files", "--cached", "--others",
                             "--exclude-standard", *SUFFIXES],
                            capture_output=True, text=True, check=True).stdout.split()
    return sorted({path for path in listed if "/" in path and
                   os.path.exists(os.path.join(root, path))})


def project_path(includer, header, root):
    """The project-relative path `header` names: as written from the root
    ("embed/host.h"), or relative to the including file ("../embed/host.h")."""
    if header.startswith("."):
        resolved = os.path.normpath(os.path.join(os.path.dirname(includer), header))
        return None if resolved.startswith("..") else resolved
    return header


def allowed(folder):
    if folder in ONLY:
        return ONLY[folder]
    if folder in ANYTHING:
        return None
    rank = LAYERS.index(folder)
    return set(LAYERS[:rank + 1])


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    problems = []
    checked = 0
    for path in sources(root):
        folder = path.split("/", 1)[0]
        if folder not in LAYERS and folder not in ONLY and folder not in ANYTHING:
            problems.append(f"{path}: folder '{folder}' is in no layer (add it to "
                            "scripts/check_layers.py and docs/architecture.md)")
            continue
        may = allowed(folder)
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        checked += 1
        for number, line in enumerate(text.splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            header = match.group(1)
            if folder == "pyhost" and HIDDEN_FROM_CONSUMERS.match(header):
                problems.append(f"{path}:{number}: a public header includes {header}")
                continue
            named = project_path(path, header, root)
            target = named.split("/", 1)[0] if named and "/" in named else None
            if target not in LAYERS or may is None:
                continue  # a system or package header, or a folder that may use all
            if target not in may:
                problems.append(f"{path}:{number}: includes {header}: '{folder}' may "
                                f"include only {', '.join(sorted(may, key=LAYERS.index))}")
    for problem in problems:
        print(problem)
    print(f"check_layers: {checked} files, {len(problems)} problems "
          f"(layers, lowest first: {' < '.join(LAYERS)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
