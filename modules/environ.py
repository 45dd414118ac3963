# pyhost's Python helpers: each execution's os.environ (embed/interpreter.cc empties
# it at creation, embed/execution_context.cc sets the policy's). Loaded by
# modules/support.cc.

import os
import sys


def set_environ(values):
    """Makes os.environ exactly `values` (the process's environment is untouched:
    os.putenv and os.unsetenv are no-ops in a sandbox)."""
    os.environ.clear()
    os.environ.update(values)
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = None  # recomputed from TMPDIR
