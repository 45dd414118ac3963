// What a process-isolation worker is started with (`pyhost worker ...`, worker/):
// its control descriptor, its interpreter's prewarm lists and package directories.
// The host writes these arguments and the worker reads them back: one format, here.
//
//   std::vector<std::string> argv = {program, "worker"};
//   for (std::string& arg : WorkerArgs(options)) argv.push_back(arg);
//   // in the worker: absl::StatusOr<WorkerOptions> options = ParseWorkerArgs(args);
#ifndef PYHOST_PROCESS_WORKER_OPTIONS_H_
#define PYHOST_PROCESS_WORKER_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pyhost {

struct WorkerOptions {
  int control_fd = -1;
  std::vector<std::string> prewarm;           // must import
  std::vector<std::string> prewarm_if_found;  // imported when installed
  std::vector<std::string> packages;          // appended to sys.path
  size_t max_output_bytes = 1 << 20;
};

// --control-fd N, --prewarm a,b, --prewarm-if-found c,d, --packages /x:/y,
// --max-output-bytes N. InvalidArgument naming a bad or unknown argument.
absl::StatusOr<WorkerOptions> ParseWorkerArgs(const std::vector<std::string>& args);
// The arguments for `options`, but the control descriptor (the client adds it).
std::vector<std::string> WorkerArgs(const WorkerOptions& options);

}  // namespace pyhost

#endif  // PYHOST_PROCESS_WORKER_OPTIONS_H_
