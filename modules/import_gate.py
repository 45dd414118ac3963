# pyhost's Python helpers: the import gate, the finder guards/hardening.cc puts first
# on sys.meta_path. Loaded by modules/support.cc; frames of this file are trusted as
# import machinery (audit_hooks/audit_hook.cc, modules::IsSupportFilename).

import sys


class ImportGate:
    """First on sys.meta_path: refuses what the policy refuses, saying why.

    `check` is pyhost's C function; it raises ImportError or returns None. Removing
    this finder gains nothing: the audit hook and builtins.__import__ check too.
    No __dict__: the code must not hang its objects on pyhost's (they would
    outlive its execution)."""

    __slots__ = ("_check",)

    def __init__(self, check):
        self._check = check

    def find_spec(self, name, path=None, target=None):
        self._check(name)
        return None


def install_import_gate(check):
    sys.meta_path.insert(0, ImportGate(check))
