// `pyhost worker`: the process-isolation forkserver's program, started by the host
// (process/forkserver_client.h), never by hand. It initializes Python, makes one
// interpreter with pyhost's layers (the same Interpreter::Create the in-process pool
// uses) and the policy's packages on sys.path and modules prewarmed, says it is
// ready, and serves forks (process/forkserver.h): each child runs one execution
// (worker/child_execution.h). Single-threaded until it forks.
//
//   pyhost worker --control-fd 3 [--prewarm json,re] [--prewarm-if-found numpy]
//                 [--packages /usr/lib/python3/dist-packages:...] [--max-output-bytes N]
#ifndef PYHOST_WORKER_WORKER_H_
#define PYHOST_WORKER_WORKER_H_

#include "process/worker_options.h"

namespace pyhost {

// Runs the worker; returns the process's exit code.
int RunWorker(const WorkerOptions& options);

}  // namespace pyhost

#endif  // PYHOST_WORKER_WORKER_H_
