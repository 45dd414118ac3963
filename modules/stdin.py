# pyhost's Python helpers: the standard input every interpreter gets (the output
# capture is C: embed/output_capture.h). Loaded by modules/support.cc.

import io


def eof_stdin():
    """A standard input at its end, as python3's with nothing to read: input() raises
    EOFError, read() returns "". Never the host's descriptor 0."""
    stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(b"")), encoding="utf-8")
    stdin.mode = "r"
    return stdin
