// Hostile cases, processes: starting, forking or reaping processes, signals, and
// ending the host process.
#include "tests/security/hostile_fixture.h"

namespace pyhost::hostile {

std::vector<Case> ProcessCases() {
  return {
      // ---- os.fork() in a subinterpreter: refused under every policy ---------------------
      Denied("YoloForkRefusedInSubinterpreter", R"PY(
import os
pid = os.fork()
if pid == 0:
    os._exit(0)
)PY",
             {"PermissionError"}, {"fork() is not supported in a subinterpreter"})
          .WithPolicy("yolo")
          .Isolated(),

      // ---- processes ----------------------------------------------------------------------
      Perm("OsSystem", "import os\nos.system('touch ' + args['canary'])\n", {"os.system denied"}),
      Perm("OsPopen", "import os\nos.popen('touch ' + args['canary']).read()\n",
           {"subprocess.Popen denied by pyhost policy 'strict'"}),
      Imp("ImportSubprocess", "import subprocess\nsubprocess.run(['touch', args['canary']])\n"),
      Perm("OsPosixSpawn", R"PY(
import os
os.posix_spawn('/bin/sh', ['sh', '-c', 'touch ' + args['canary']], {})
)PY",
           {"os.posix_spawn denied"}),
      Perm("OsPosixSpawnp", R"PY(
import os
os.posix_spawnp('touch', ['touch', args['canary']], {})
)PY",
           {"os.posix_spawn denied"}),
      Perm("OsFork", "import os\nif os.fork() == 0:\n    os._exit(0)\n", {"os.fork denied"}),
      Denied("OsForkpty", "import os\nos.forkpty()\n", {"PermissionError", "RuntimeError"},
             {"os.forkpty denied", "not supported for subinterpreters"}),
      Imp("PtyImport", "import pty\npty.spawn(['touch', args['canary']])\n"),
      Imp("MultiprocessingImport", R"PY(
import multiprocessing
multiprocessing.Process(target=print).start()
)PY"),
      Perm("OsExecv", "import os\nos.execv('/bin/touch', ['touch', args['canary']])\n",
           {"os.exec denied"}),
      Perm("OsSpawnv", "import os\nos.spawnv(os.P_WAIT, '/bin/touch', ['touch', args['canary']])\n",
           {"denied by pyhost policy 'strict'"}),
      FixedEscape("WaitpidReapsHostChild", R"PY(
import os
result = os.waitpid(args['child_pid'], 0)
)PY"),

      // ---- signals and ending the process -------------------------------------------------
      Perm("OsKillSelfSigkill", "import os\nos.kill(os.getpid(), 9)\n", {"os.kill denied"})
          .Isolated(),
      Perm("OsKillSelfSigterm", "import os\nos.kill(os.getpid(), 15)\n", {"os.kill denied"})
          .Isolated(),
      Perm("OsKillSelfSigusr2", "import os\nos.kill(os.getpid(), 12)\n", {"os.kill denied"}),
      Perm("OsKillpgSelf", "import os\nos.killpg(os.getpgid(0), 12)\n", {"os.killpg denied"}),
      Imp("SignalImportDenied", "import signal\nsignal.raise_signal(signal.SIGTERM)\n"),
      Via("SignalRaiseSignalViaStdlib",
          "signal = _reach('signal')\nsignal.raise_signal(signal.SIGUSR2)\n",
          {"signal.raise_signal is not available in pyhost"}),
      Via("SignalAlarmViaStdlib", "signal = _reach('signal')\nsignal.alarm(1)\n",
          {"signal.alarm is not available in pyhost"})
          .Isolated(1300),
      Via("SignalSetitimerViaStdlib", R"PY(
signal = _reach('signal')
signal.setitimer(signal.ITIMER_REAL, 0.05)
)PY",
          {"signal.setitimer is not available in pyhost"})
          .Isolated(250),
      Via("SignalPthreadKillViaStdlib", R"PY(
signal = _reach('signal')
signal.pthread_kill(_threading().get_ident(), signal.SIGUSR2)
)PY",
          {"is not available in pyhost", "denied by pyhost policy"}),
      Via("SignalSignalViaStdlib", R"PY(
signal = _reach('signal')
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
)PY",
          {"signal.signal is not available in pyhost"}),
      Via("SignalPthreadSigmaskViaStdlib", R"PY(
signal = _reach('signal')
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
)PY",
          {"signal.pthread_sigmask is not available in pyhost"}),
      Denied("OsExit", "import os\nos._exit(0)\n", {"SystemExit"}, {"0"}).Isolated(),
      Perm("OsAbort", "import os\nos.abort()\n", {"os.abort is not available in pyhost"})
          .Isolated(),
      Denied("SysExitInFinally", R"PY(
import sys
try:
    raise ValueError('first')
finally:
    sys.exit(3)
)PY",
             {"SystemExit"}, {"3"}),
      Denied("RaiseSystemExit", "raise SystemExit(5)\n", {"SystemExit"}, {"5"}),
      Denied("RaiseKeyboardInterrupt", "raise KeyboardInterrupt('stop')\n", {"KeyboardInterrupt"},
             {"stop"}),
      Denied("RaiseGeneratorExit", "raise GeneratorExit('bye')\n", {"GeneratorExit"}, {"bye"}),
      Imp("FaulthandlerViaSysModules", R"PY(
import sys
fh = sys.modules.get('faulthandler') or __import__('faulthandler')
fh._sigsegv()
)PY",
          {"never allowed in pyhost"})
          .Isolated(),
  };
}

}  // namespace pyhost::hostile
