// `pyhost serve`: JSON lines on stdin, one answer line per request on stdout.
//
//   {"id": 1, "op": "register", "name": "wc", "source": "def run(args): ..."}
//   {"id": 2, "op": "call", "name": "wc", "args": {"text": "a b"}}
//   {"id": 3, "op": "exec", "code": "result = 6 * 7"}
//
// exec and call requests run concurrently on `workers` threads and are answered as
// they complete, each answer carrying its request's id. A register request waits for
// the requests read before it, and is done before the next line is read: calls see
// the tool as it was registered when they were sent. A line that is not
// JSON, an unknown op, a missing field or an unknown tool gets {"ok": false,
// "error": {...}} and the server goes on. Returns (exit status 0) at end of input
// once every request has been answered. When reading ends because `stopping()` holds
// (a stop signal), requests not started yet are answered with an "Interrupted" error
// instead of being run. Once an answer cannot be written (the client closed its
// end), reading stops, requests not started are not run, and it returns 1.
//
// Bounds: a line is at most kMaxRequestLineBytes (a longer one is skipped, never
// held whole, and answered with a BadRequest naming its line number); the reader
// stops reading while kMaxQueuedRequests requests wait for a worker or the requests
// read but not yet answered hold kMaxPendingRequestBytes of text, so a client that
// sends faster than requests complete is held back by the pipe, not by memory.
#ifndef PYHOST_CLI_SERVE_H_
#define PYHOST_CLI_SERVE_H_

#include <cstddef>
#include <functional>
#include <istream>
#include <ostream>

#include "pyhost/host.h"

namespace pyhost::cli {

inline constexpr size_t kMaxRequestLineBytes = 16 << 20;
inline constexpr size_t kMaxQueuedRequests = 64;
inline constexpr size_t kMaxPendingRequestBytes = 64 << 20;

int Serve(Host& host, std::istream& in, std::ostream& out, int workers,
          std::function<bool()> stopping = nullptr);

}  // namespace pyhost::cli

#endif  // PYHOST_CLI_SERVE_H_
