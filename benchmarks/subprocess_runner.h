// The subprocess baseline: a run(args) tool executed the way the seeds' runners do
// it, one `python3` process per call (posix_spawn, pipes, cleared environment).
//
//   pyhost_bench::SubprocessOptions options;
//   options.python = "/usr/bin/python3";
//   options.tool_source = source;
//   pyhost_bench::SubprocessToolRunner runner(options);
//   absl::StatusOr<nlohmann::json> envelope = runner.Call({{"text", "a b"}});
//   // *envelope == {"ok": true, "data": ...} (or what run() returned, if it has "ok")
//
// The child gets a tiny runner script with -c and the tool's source as argv[1]; it
// reads the JSON args from stdin, exec's the source, calls run(args) and prints the
// return value as JSON on stdout (an exception becomes an {"ok": false, ...} dict).
// The C++ side wraps anything that is not a dict with "ok" as {"ok": true, "data": ...},
// as pyhost does. Only for benchmarking: no limits, no sandbox.
//
// Thread-safety: Call is thread-safe (no shared mutable state). SIGPIPE is reset to
// its default in the child; the caller should ignore SIGPIPE in its own process, or a
// child dying before reading its stdin kills the caller.
#ifndef PYHOST_BENCHMARKS_SUBPROCESS_RUNNER_H_
#define PYHOST_BENCHMARKS_SUBPROCESS_RUNNER_H_

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace pyhost_bench {

struct SubprocessOptions {
  std::string python = "/usr/bin/python3";  // Debian's, not the pyenv shim on PATH
  std::vector<std::string> flags;           // before -c, e.g. {"-I", "-S"}
  std::string tool_source;                  // defines run(args)
  int timeout_ms = 10000;                   // the child is killed after this
};

class SubprocessToolRunner {
 public:
  explicit SubprocessToolRunner(SubprocessOptions options);

  // Spawns the interpreter, writes the args, reads and parses the envelope.
  absl::StatusOr<nlohmann::json> Call(const nlohmann::json& args) const;

 private:
  SubprocessOptions options_;
  std::vector<std::string> argv_;  // python, flags..., -c, runner, source
  std::vector<std::string> env_;   // PATH and HOME only, like the seed runners
};

}  // namespace pyhost_bench

#endif  // PYHOST_BENCHMARKS_SUBPROCESS_RUNNER_H_
