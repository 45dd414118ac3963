// Reading a file that a user named (a policy file, the code of `pyhost exec FILE`)
// without trusting what the name turns out to be.
//
//   absl::StatusOr<std::string> text = ReadUserFile(path, 1 << 20, "policy file");
//
// Only a regular file is read, and only up to `max_bytes`: /dev/zero would grow memory
// without end, a FIFO would block the reader, a directory would read as empty. The
// file is opened without blocking (O_NONBLOCK) and checked on the descriptor (fstat),
// so what is read is what was checked. Errors name `what` (may be empty), the path
// and the reason.
// Not for standard input or for paths the code in a sandbox names (those are the
// audit hook's, audit_hooks/).
#ifndef PYHOST_GUARDS_USER_FILE_H_
#define PYHOST_GUARDS_USER_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pyhost {

// NotFound when it cannot be opened; InvalidArgument when it is not a regular file or
// is larger than `max_bytes`.
absl::StatusOr<std::string> ReadUserFile(const std::string& path, size_t max_bytes,
                                         absl::string_view what);

}  // namespace pyhost

#endif  // PYHOST_GUARDS_USER_FILE_H_
