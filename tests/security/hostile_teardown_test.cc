// Hostile tests that need more than one execution or something happening meanwhile:
// code that acts after its answer (at teardown, from a finalizer, a thread or a replaced
// module), or that tampers with what the next execution gets.
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/security/hostile_fixture.h"

namespace pyhost::hostile {

TEST_F(HostileTest, BuiltinsTamperingDoesNotLeakIntoTheNextExecution) {
  ExecResult tampered = Run(*host_, R"PY(
import builtins, sys
builtins.__import__ = lambda *a, **k: 'TAMPERED'
builtins.open = lambda *a, **k: 'TAMPERED'
builtins.print = lambda *a, **k: None
sys.modules['json'] = 'TAMPERED'
sys.meta_path.clear()
import os
result = [os, open('x')]
)PY");
  ASSERT_TRUE(tampered.ok) << tampered.ToJson().dump();
  EXPECT_EQ(tampered.result, json({"TAMPERED", "TAMPERED"}));
  for (int i = 0; i < 3; ++i) {  // more than the pool holds: every interpreter is fresh
    ExecResult next = Run(*host_, R"PY(
import builtins, json
out = {'json': json.__name__, 'import_self': builtins.__import__.__self__.__name__}  # pyhost's guard
try:
    open(args['secret_path'])
    out['open'] = 'opened'
except PermissionError:
    out['open'] = 'denied'
try:
    import socket
    out['socket'] = 'imported'
except ImportError:
    out['socket'] = 'denied'
print('printed')
result = out
)PY");
    ASSERT_TRUE(next.ok) << next.ToJson().dump();
    EXPECT_EQ(next.result, json({{"json", "json"},
                                 {"import_self", "pyhost.guard"},
                                 {"open", "denied"},
                                 {"socket", "denied"}}));
    EXPECT_EQ(next.stdout_stream.text, "printed\n");
    std::vector<std::string> problems;
    CheckNoSideEffects(next, problems);
    for (const std::string& p : problems) ADD_FAILURE() << p;
  }
  Repair();
}

// _tracemalloc is process-wide: started from one execution it hooks the allocators of
// the whole process (the host's and every interpreter's). Runs in a child process: the
// host may never answer again.
TEST_F(HostileTest, TracemallocCannotStartProcessWide) {
  auto body = [] {
    ExecResult started = Run(*host_, "_reach('_tracemalloc').start()\n");
    std::vector<std::string> problems = CheckDenial(FixedEscape("tracemalloc", ""), started);
    CheckNoSideEffects(started, problems);
    // The side effect: tracing is on for the whole process, seen from a later execution.
    ExecResult probe = Run(*host_, "result = _reach('_tracemalloc').is_tracing()\n");
    if (probe.result == json(true)) {
      problems.push_back("tracemalloc started by one execution is still tracing in the next one");
    }
    Run(*host_, "_reach('_tracemalloc').stop()\n");
    Repair();
    CheckHostAnswers(*host_, problems);
    return problems;
  };
  EXPECT_EXIT(RunIsolated(body, 10), ::testing::ExitedWithCode(0), "")
      << "tracemalloc must not be startable, and the host must keep answering";
}

// Objects the code keeps alive past the end of its execution are finalized when the
// interpreter is destroyed, after the policy has been lifted: __del__ must still be held
// to the policy (or never run).
TEST_F(HostileTest, FinalizerAtTeardownHasNoSideEffects) {
  ExecResult r = Run(*host_, R"PY(
import os, sys
class Bomb:
    # Everything __del__ needs is held here: module globals are gone at teardown.
    def __init__(self, canary, pipe_fd, witness):
        self.canary, self.pipe_fd, self.witness = canary, pipe_fd, witness
        self.open, self.write, self.system, self.marker = open, os.write, os.system, PWN
    def __del__(self):
        # First a witness in OUTPUT_DIR (refused too if teardown is locked down), then harm.
        for attempt in (lambda: self.open(self.witness, 'w').write('finalized'),
                        lambda: self.open(self.canary, 'w').write(self.marker),
                        lambda: self.write(self.pipe_fd, self.marker.encode()),
                        lambda: self.system('touch ' + self.canary + '.system')):
            try:
                attempt()
            except BaseException:
                pass
open(OUTPUT_DIR + '/keep.txt', 'w').write('keeps OUTPUT_DIR')
sys.bomb = Bomb(args['canary'], args['pipe_fd'], OUTPUT_DIR + '/finalized.txt')
result = 'armed'
)PY");
  ExpectNothingHappenedAtTeardown(r, "finalized.txt");
}

// Under a policy that allows threads, a thread outlives its execution: once the answer is
// given the interpreter's policy is lifted, and the thread is still running the code.
TEST_F(HostileTest, ThreadOutlivingItsExecutionHasNoSideEffects) {
  ExecResult r = Run(*host_, R"PY(
import os, queue, time
threading = queue.threading
def later(canary, pipe_fd, mark, write=os.write, sleep=time.sleep, open=open):
    sleep(0.15)
    for attempt in (lambda: open(canary, 'w').write(mark),
                    lambda: write(pipe_fd, mark.encode())):
        try:
            attempt()
        except BaseException:
            pass
threading.Thread(target=later, args=(args['canary'], args['pipe_fd'], PWN)).start()
result = 'started'
)PY",
                     "threads");
  EXPECT_TRUE(r.ok) << r.ToJson().dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  std::vector<std::string> problems;
  WaitForTeardown(problems);
  CheckNoSideEffects(r, problems);
  Repair();
  CheckHostAnswers(*host_, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

// Stand-ins the code puts in sys.modules['atexit'] and ['threading'] are never called
// at teardown: Interpreter::Quiesce clears atexit with the atexit._clear it took at
// creation and drops sys.modules['threading'] (Py_EndInterpreter would call it).
TEST_F(HostileTest, ModulesTheCodeReplacedHaveNoSideEffectsAtTeardown) {
  ExecResult r = Run(*host_, R"PY(
import os, sys
class StandIn:
    def __init__(self, canary, pipe_fd, witness):
        self.canary, self.pipe_fd, self.witness = canary, pipe_fd, witness
        self.open, self.write, self.marker = open, os.write, PWN
    def _clear(self):
        # First a witness in OUTPUT_DIR (refused too if teardown is locked down), then harm.
        for attempt in (lambda: self.open(self.witness, 'w').write('called'),
                        lambda: self.open(self.canary, 'w').write(self.marker),
                        lambda: self.write(self.pipe_fd, self.marker.encode())):
            try:
                attempt()
            except BaseException:
                pass
open(OUTPUT_DIR + '/keep.txt', 'w').write('keeps OUTPUT_DIR')
sys.modules['atexit'] = StandIn(args['canary'], args['pipe_fd'], OUTPUT_DIR + '/called.txt')
result = 'armed'
)PY");
  ExpectNothingHappenedAtTeardown(r, "called.txt");
}

// A resident interpreter keeps module state between executions, and pyhost runs some
// Python of its own there before the next execution's policy is in force (it resets
// os.environ): code that replaced what that Python calls runs with no policy at all.
TEST_F(HostileTest, ResidentHookBeforeThePolicyIsInForceHasNoSideEffects) {
  ExecRequest request;
  request.isolation = Isolation::kResident;
  request.args = Args();
  request.code = absl::StrCat(kPrelude, R"PY(
import os
class Hooked(type(os.environ)):
    # Defaults, not globals: the execution's globals are cleared when it ends.
    def clear(self, _canary=args['canary'], _pipe=args['pipe_fd'], _mark=PWN, _open=open,
              _write=os.write):
        for attempt in (lambda: _open(_canary, 'w').write(_mark),
                        lambda: _write(_pipe, _mark.encode())):
            try:
                attempt()
            except BaseException:
                pass
        return super().clear()
hooked = Hooked(os.environ._data, os.environ.encodekey, os.environ.decodekey,
                os.environ.encodevalue, os.environ.decodevalue)
os.environ = hooked
result = 'armed'
)PY");
  absl::StatusOr<ExecResult> armed = host_->Execute(request);
  ASSERT_TRUE(armed.ok()) << armed.status();
  EXPECT_TRUE(armed->ok) << armed->ToJson().dump();
  std::vector<std::string> problems;
  CheckNoSideEffects(*armed, problems);
  request.code = "result = 'second'";
  absl::StatusOr<ExecResult> second = host_->Execute(request);
  ASSERT_TRUE(second.ok()) << second.status();
  CheckNoSideEffects(*second, problems);
  Repair();
  CheckHostAnswers(*host_, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

}  // namespace pyhost::hostile
