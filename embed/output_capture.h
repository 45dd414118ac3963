// sys.stdout and sys.stderr of every interpreter: C objects that keep at most a cap of
// UTF-8 bytes per execution, with the cap and the bytes out of the code's reach.
//
//   // At interpreter creation (GIL held in it):
//   absl::StatusOr<OutputCaptures> captures = InstallOutputCaptures(1 << 20);
//   // Each execution, before the code runs and after:
//   ArmOutputCaptures(*captures, request_max_bytes);
//   TakeOutputCapture(captures->out.ptr(), result.stdout_stream);
//
// What the code sees: sys.stdout / sys.stderr with write(str), writelines, flush,
// encoding "utf-8", errors "strict" (a lone surrogate raises UnicodeEncodeError, as
// in python3), and .buffer, whose write(bytes) counts against the same cap. Once a
// write does not fit, the stream is truncated: the part that fits up to a UTF-8
// character boundary is kept and everything after is dropped, so the text is always a
// prefix of what was written. Bytes written to .buffer that are not UTF-8 are
// reported as U+FFFD (Python's errors="replace"). The objects' types are immutable,
// cannot be instantiated or subclassed, and expose no cap: the code cannot raise it.
// The host never holds more than the cap per stream.
//
// Not a file: fileno() raises io.UnsupportedOperation, close() is a no-op (the streams
// belong to the host and serve every later execution of the interpreter).
#ifndef PYHOST_EMBED_OUTPUT_CAPTURE_H_
#define PYHOST_EMBED_OUTPUT_CAPTURE_H_

#include <Python.h>

#include <cstddef>

#include <pybind11/pytypes.h>

#include "absl/status/statusor.h"
#include "pyhost/result.h"

namespace pyhost {

struct OutputCaptures {
  pybind11::object out;  // sys.stdout
  pybind11::object err;  // sys.stderr
};

// Makes both captures with cap `max_bytes` and installs them as sys.stdout,
// sys.__stdout__, sys.stderr and sys.__stderr__. GIL held in the interpreter they
// are for.
absl::StatusOr<OutputCaptures> InstallOutputCaptures(size_t max_bytes);

// Empties both captures, sets their cap, and installs them again as the four sys
// streams (the code of an earlier execution may have replaced them). GIL held in
// their interpreter.
void ArmOutputCaptures(const OutputCaptures& captures, size_t max_bytes);

// Moves what `capture` (one of OutputCaptures) holds into `out` and empties it.
// GIL held in its interpreter.
void TakeOutputCapture(PyObject* capture, CapturedStream& out);

}  // namespace pyhost

#endif  // PYHOST_EMBED_OUTPUT_CAPTURE_H_
