// Runs one request inside an interpreter the calling thread has entered: a snippet
// (ExecRequest) or a call of a tool's run(args). No thread or interpreter management
// here: the Host picks the interpreter and enters it (host.h, thread_state.h).
//
//   ThreadStateScope scope(interp->state());
//   ExecResult result;
//   RunSnippet(*interp, request, /*max_output_bytes=*/1 << 20, result);
//
// Precondition of every function (checked): the GIL is held with a thread state of
// `interp` current. Python errors never escape: they become ExecError or an error
// envelope, and set the answer's outcome. Only the C API is used (docs/architecture.md,
// "The C API, not pybind11, on the request path"). `cancellation` (may be
// null) can interrupt the user's code, and only that (never pyhost's own around it).
#ifndef PYHOST_EMBED_RUNNER_H_
#define PYHOST_EMBED_RUNNER_H_

#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <pybind11/pytypes.h>

#include "bindings/cancellation.h"
#include "embed/interpreter.h"
#include "pyhost/request.h"
#include "pyhost/result.h"

namespace pyhost {

// An error of an execution and the outcome it gives the answer: kCodeError (the
// code's), kInterrupted (its cancellation's), kHostError (pyhost's).
struct Failure {
  Outcome outcome = Outcome::kCodeError;
  ExecError error;
};

// The filename user snippets run under (it appears in tracebacks).
inline constexpr char kSnippetFilename[] = "<code>";

// Runs request.code with `args` and `extra_globals` (an object: name -> value) bound;
// fills result's ok, streams, result, error.
void RunSnippet(Interpreter& interp, const ExecRequest& request, size_t max_output_bytes,
                const nlohmann::json& extra_globals, ExecResult& result,
                Cancellation* cancellation = nullptr);

// A tool's source compiled once, as marshaled code: loadable in any interpreter.
struct CompiledTool {
  std::string name;
  std::string filename;  // "<tool:NAME>"
  std::string source;
  std::string marshaled_code;
};

// A tool module executed in one interpreter: its globals, a copy of them as the
// module body left them, and its run function.
struct ToolModule {
  PyObject* globals = nullptr;   // owned by the interpreter (Interpreter::Adopt)
  PyObject* snapshot = nullptr;  // likewise; never reachable from Python
  PyObject* run = nullptr;
};

// Compiles `source`; a SyntaxError comes back as the failure (with its line).
std::optional<Failure> CompileTool(Interpreter& interp, absl::string_view name,
                                   absl::string_view source, CompiledTool& out);

// Runs the tool's module body (with `extra_globals` bound) and finds run(); an
// exception, or no callable `run`, comes back as the failure.
std::optional<Failure> LoadToolModule(Interpreter& interp, const CompiledTool& tool,
                                      const nlohmann::json& extra_globals, ToolModule& out,
                                      Cancellation* cancellation = nullptr);

// Calls run(args) and builds the envelope. With isolate_globals, the module's global
// bindings are put back as the module body left them after the call (and before it,
// if anything changed them since): globals a call assigns do not persist, whichever
// function of the tool assigns them (run, a decorator's wrapper, a helper, a
// closure), while module state (objects mutated in place, module attributes) does.
void CallToolRun(Interpreter& interp, const CompiledTool& tool, const ToolModule& module,
                 const nlohmann::json& args, bool isolate_globals, size_t max_output_bytes,
                 ToolCallResult& result, Cancellation* cancellation = nullptr);

// The error envelope for an ExecError: {"ok": false, "error": {...}}.
nlohmann::json ErrorEnvelope(const ExecError& error);

}  // namespace pyhost

#endif  // PYHOST_EMBED_RUNNER_H_
