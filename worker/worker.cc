#include "worker/worker.h"

#include <unistd.h>

#include <filesystem>
#include <iterator>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "bindings/thread_state.h"
#include "embed/interpreter.h"
#include "embed/runtime.h"
#include "process/channel.h"
#include "process/forkserver.h"
#include "worker/child_execution.h"

namespace pyhost {

int RunWorker(const WorkerOptions& options) {
  UniqueFd control(options.control_fd);
  auto failed = [&control](const absl::Status& status) {
    (void)SendRecord(control.get(),
                     nlohmann::json{{"failed", std::string(status.message())}}.dump().substr(
                         0, kMaxRecordBytes));
    return 1;
  };
  absl::StatusOr<Runtime*> runtime = Runtime::Get();
  if (!runtime.ok()) return failed(runtime.status());
  InterpreterConfig config;
  config.prewarm_modules = options.prewarm;
  config.prewarm_if_found = options.prewarm_if_found;
  config.sys_path = options.packages;
  config.max_output_bytes = options.max_output_bytes;
  absl::StatusOr<std::unique_ptr<Interpreter>> interp;
  {
    // Made with a main-interpreter thread state, as the pool makes them; no GIL or
    // thread state is held while serving: a child takes its own in the interpreter.
    ThreadStateScope main((*runtime)->main_interpreter());
    interp = Interpreter::Create(config);
  }
  if (!interp.ok()) return failed(interp.status());
  // Forking is safe only with no other thread (one holding a lock would leave it held
  // in every child): a prewarmed module that started one makes this worker unusable.
  const auto threads = std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                     std::filesystem::directory_iterator());
  if (threads != 1) {
    return failed(absl::FailedPreconditionError(
        absl::StrCat("the worker runs ", threads,
                     " threads after prewarming (a prewarmed module started "
                     "some): it cannot fork safely")));
  }
  if (!SendRecord(control.get(), R"({"ready": true})").ok()) return 1;
  const pid_t self = getpid();
  const int code = ServeForks(std::move(control),
                              [&interp, self](UniqueFd channel, const ChildIdentity& identity) {
                                RunChild(std::move(channel), **interp, self, identity);
                                return 0;  // not reached: RunChild exits
                              });
  // Never torn down: the process ends now, and ending an interpreter runs Python.
  _exit(code);
}

}  // namespace pyhost
