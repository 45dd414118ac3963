// What a Host answers: the outcome of a snippet (ExecResult) or a tool call
// (ToolCallResult), as data with a JSON form (the `pyhost` command prints these).
// Both are an Answer: how the request ended (pyhost/outcome.h), what it printed, the
// files it left and its figures.
#ifndef PYHOST_RESULT_H_
#define PYHOST_RESULT_H_

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pyhost/outcome.h"
#include "pyhost/request.h"

namespace pyhost {

struct CapturedStream {
  std::string text;
  bool truncated = false;  // the code wrote more than the cap; text holds the start
};

// An error of the user's code (or of its result), described for a person or an LLM.
struct ExecError {
  std::string type;  // "KeyError", "SyntaxError", "ResultNotSerializable", ...
  std::string message;
  int line = 0;           // in the user's code; 0 when unknown
  std::string traceback;  // user frames only
  std::string hint;       // a short suggestion for common mistakes; may be empty

  nlohmann::json ToJson() const;
};

// Files the code left in OUTPUT_DIR; the directory is kept only when there are any,
// and then belongs to the caller.
struct OutputFiles {
  std::string dir;
  std::vector<std::string> files;  // relative to dir
};

struct ExecStats {
  Isolation isolation = Isolation::kFresh;
  std::string policy;  // name of the policy in force
  double wall_us = 0;  // from the call to the answer, waiting included
  double cpu_us = 0;   // CPU time of the executing thread while it ran the code
  double wait_us = 0;  // of wall_us, the time spent waiting for an interpreter
  int64_t interpreter_id = -1;
  Limits limits;                  // in force (every field set once the request ran)
  int64_t peak_memory_bytes = 0;  // the memory budget's peak (guards/memory_budget.h)
  // The limit that ended the execution ("timeout_ms", "cpu_ms", "memory_mb"), or empty.
  std::string limit_hit;
  // The code was stuck in C past its deadline: its interpreter was set aside, never
  // reused, and is destroyed when the code returns (PoolStats counts them).
  bool quarantined = false;
  // The mode that ran it when it is not the one asked for ("process": the policy
  // names packages or requires process isolation), or empty.
  std::string rerouted;
  // Process isolation only (null otherwise): the child's pid, how it ended
  // (wait_status), its max_rss_kb, user_us and system_us, the restrictions in force
  // in it, fork_us, and the worker's starts and deaths so far.
  nlohmann::json process;

  nlohmann::json ToJson() const;
};

// What every request's answer holds, whichever isolation ran it.
struct Answer {
  // Set by whatever ran the request; kHostError until then (an answer nothing
  // filled in is never mistaken for a success).
  Outcome outcome = Outcome::kHostError;
  CapturedStream stdout_stream;  // for a tool call, not part of the envelope
  CapturedStream stderr_stream;
  OutputFiles output;
  ExecStats stats;
};

struct ExecResult : Answer {
  bool ok = false;                 // outcome == Outcome::kOk
  nlohmann::json result;           // the global `result`; null if unset
  std::optional<ExecError> error;  // set unless ok

  // {"ok", "outcome", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
  //  "result", "error": null | {...}, "output_dir", "output_files", "stats": {...}}
  nlohmann::json ToJson() const;
};

struct ToolCallResult : Answer {
  // {"ok": true, "data": ...} or {"ok": false, "error": {"message", "type", ...}},
  // or the dict run() returned when it has an "ok" key (outcome kOk: run() returned).
  nlohmann::json envelope;
};

}  // namespace pyhost

#endif  // PYHOST_RESULT_H_
