#!/usr/bin/python3
"""Fidelity check: CPython's own test modules inside pyhost against plain python3.

Runs each test module of the list below twice with the same runner: inside
`pyhost exec --policy POLICY` (one fresh execution per module) and in plain
/usr/bin/python3 (one process per module), and compares every test's outcome
(pass, fail, error, skip, xfail, xpass) by test id. Prints the differences per
module and a summary line: "N tests, M match, K differ".

    scripts/fidelity.py                      # the 53 modules, under yolo
    scripts/fidelity.py --fast --fail-unexplained   # the CI subset, under 2 minutes
    scripts/fidelity.py --policy yolo --policy strict test_json test_re
    scripts/fidelity.py --json out.json      # every outcome, for a later diff

The test modules come from Debian's libpython3.11-testsuite (/usr/lib/python3.11/test).
`--policy strict` runs strict plus what the test suite itself needs (the `test`
package importable, the run's working directory writable): it shows what strict
refuses that the modules use. Known, deliberate differences under yolo are listed
with their reasons in docs/security.md ("Fidelity"). Exit status: 0 when every
module ran under every policy (differences are reported, not failures), 1 otherwise,
or with --max-differ N when more than N tests differ, or with --fail-unexplained
when a difference has no known cause (KNOWN_CAUSES below: what CI should use).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PYHOST = os.path.join(os.path.dirname(HERE), "build", "cli", "pyhost")
PYTHON = "/usr/bin/python3"

# Computation, data handling, text and time: what pyhost's users run.
MODULES = [
    "test_json", "test_re", "test_collections", "test_itertools", "test_functools",
    "test_decimal", "test_fractions", "test_statistics", "test_datetime", "test_string",
    "test_textwrap", "test_difflib", "test_csv", "test_base64", "test_struct",
    "test_heapq", "test_bisect", "test_enum", "test_dataclasses", "test_typing",
    "test_unicodedata", "test_hashlib", "test_zlib", "test_operator", "test_copy",
    "test_pprint", "test_random", "test_math", "test_cmath", "test_time",
    "test_calendar", "test_strptime", "test_zoneinfo", "test_uuid", "test_binascii",
    "test_array", "test_deque", "test_ordered_dict", "test_contextlib", "test_abc",
    "test_types", "test_shlex", "test_html", "test_htmlparser", "test_fnmatch",
    "test_graphlib", "test_ipaddress", "test_locale", "test_tomllib", "test_configparser",
    "test_pickle", "test_int", "test_float",
]

# The CI subset: small modules that still touch conversion, text, numbers and time.
FAST_MODULES = ["test_json", "test_re", "test_bisect", "test_heapq", "test_textwrap",
                "test_fractions", "test_statistics", "test_string", "test_base64",
                "test_calendar", "test_pickle", "test_zoneinfo"]

# The differences known under yolo, each with its reason (docs/security.md,
# "Fidelity"): (label, regular expression on the test id or on the outcome's
# detail). A difference that matches none is printed as unexplained.
KNOWN_CAUSES = [
    ("_testcapi, _testinternalcapi: never importable in pyhost (they crash the host on purpose)",
     r"_testcapi|_testinternalcapi|legacy Unicode C API"),
    ("faulthandler: never importable (crash handlers and watchdog threads are the host's)",
     r"faulthandler"),
    ("sys.setswitchinterval: refused (process-wide on 3.11)", r"setswitchinterval"),
    ("os.fork(): refused in a subinterpreter, as 3.12 does", r"os\.fork denied"),
    ("os.chdir: refused (the working directory is the host's)", r"os\.chdir"),
    ("time.clock_settime: refused (the machine's clock)", r"clock_settime"),
    ("locale.setlocale to another locale: refused (process-wide)",
     r"locale\.setlocale|cannot set the system default locale"),
    ("numpy: not importable (no site-packages; NumPy does not support subinterpreters)",
     r"[Nn]umpy"),
    ("TZ and time.tzset()/mktime(): the time zone is the process's; refused while the"
     " execution's os.environ['TZ'] differs (issue 7, item 18)",
     r"but the time zone belongs to the whole host process"
     r"|^test\.datetimetester\..*\.test_(astimezone|astimezone_default_eastern|timestamp_naive|fromtimestamp|timestamp)$"
     r"|^test\.test_time\..*\.test_tzset$|^test\.test_strptime\..*test_TimeRE_recreation_timezone$"),
    ("C accelerators shared by every interpreter on 3.11 (_decimal, _asyncio, _zoneinfo):"
     " the pure-Python twins run instead (issue 7, item 11)",
     r"^test\.test_zoneinfo\.test_zoneinfo\.(ExtensionBuilt|CZoneInfo|CZoneInfoCache|CZoneInfoPickle|CCallingConventions|CZoneInfoDatetimeSubclass|CZoneInfoSubclass|CWeirdZone)"
     r"|^test\.test_decimal\.C|^test\.test_asyncio\..*C(Future|Task)"
     r"|requires _decimal|test requires C version"),
    ("type.__subclasses__() hides the code's classes (issue 7, item 19)",
     r"^test\.test_typing\.CollectionsAbcTests\.test_(collections_as_base|subclassing_register)$"
     r"|^test\.test_abc\..*\.test_registration_(builtins|transitiveness)$"),
    ("os.environ starts empty (the host's environment is not the code's): no PATH for"
     " shutil.which", r"requires (ip|ifconfig)$"),
    # What only an enforcing policy (--policy strict) refuses.
    ("policy: no processes", r"processes are not allowed|requires multiprocessing|'multiprocessing'"
                             # json.tool runs in a child python; its cleanup reports the missing file
                             r"|^test\.test_json\.test_tool\.TestTool\.test_(ensure_ascii_default|no_ensure_ascii_flag)$"),
    ("policy: no threads", r"starting threads denied"),
    ("policy: a module not on the allow list (pickle and import_fresh_module import as the code)",
     r"is not allowed by policy|import of module '.*' failed|it's not found as"),
    ("policy: a file outside the writable or readable paths", r"outside the (writable|readable) paths"),
    ("policy: suspended frames (gi_frame) are not reachable", r"suspended frames"),
]


def cause_of(test_id, detail):
    for label, pattern in KNOWN_CAUSES:
        if re.search(pattern, test_id) or re.search(pattern, detail or ""):
            return label
    return None


# Runs one test module and sets `result` to {"outcomes": {id: outcome}, "details":
# {id: first line of the error or skip reason}}. The same text runs in both places:
# as a pyhost snippet (args is the request's) and in python3 as __main__.
RUNNER = r'''
import io, sys, unittest
from test import support
support.use_resources = []   # as regrtest without -u: no network, cpu, ...
support.verbose = 0

outcomes, details = {}, {}

def note(test, outcome, text=''):
    key = test.id()
    if outcome == 'pass':
        outcomes.setdefault(key, 'pass')
        return
    outcomes[key] = outcome
    if text.strip():
        details[key] = text.strip().splitlines()[0][:300]

def describe(err):
    try:
        return '%s: %s' % (err[0].__name__, err[1])
    except BaseException:
        return err[0].__name__

class Recorder(unittest.TestResult):
    def addSuccess(self, test):
        note(test, 'pass')
    def addFailure(self, test, err):
        note(test, 'fail', describe(err))
    def addError(self, test, err):
        note(test, 'error', describe(err))
    def addSkip(self, test, reason):
        note(test, 'skip', str(reason))
    def addExpectedFailure(self, test, err):
        note(test, 'xfail')
    def addUnexpectedSuccess(self, test):
        note(test, 'xpass')
    def addSubTest(self, test, subtest, err):
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            if outcomes.get(test.id()) != 'error':
                note(test, 'fail' if failed else 'error', describe(err))

name = 'test.' + args['module']
try:
    __import__(name)
    module = sys.modules[name]
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    suite.run(Recorder())
except BaseException as e:
    outcomes[name] = 'error'
    details[name] = ('%s: %s' % (type(e).__name__, e))[:300]
result = {'outcomes': outcomes, 'details': details}
'''

# Plain python3: the runner as __main__, `args` given, `result` printed as JSON.
PLAIN_SHIM = r'''
import __main__, json, sys
g = __main__.__dict__
g['args'] = {'module': sys.argv[2]}
exec(compile(open(sys.argv[1]).read(), '<code>', 'exec'), g)
sys.__stdout__.write('\n@@FIDELITY@@' + json.dumps(g['result']) + '\n')
'''


def strict_for_tests(workdir):
    """strict, plus what running CPython's tests needs: the `test` package, the C
    accelerators and old names its modules import directly (import_fresh_module), and
    the run's working directory (where test.support writes its TESTFN files)."""
    return {"extends": "strict", "name": "strict+tests",
            "imports": {"allow": ["test", "_heapq", "_bisect", "_json", "_statistics",
                                  "_pickle", "_datetime", "_pydatetime", "_decimal",
                                  "_pydecimal", "_csv", "_struct", "_functools",
                                  "_collections", "_operator", "_random", "_sre",
                                  "sre_compile", "sre_parse", "sre_constants", "_string",
                                  "_elementtree", "_zoneinfo", "_md5", "_sha1", "_sha256",
                                  "_sha512", "_sha3", "_blake2", "_hashlib", "_uuid",
                                  "_typing"]},
            "files": {"write": [workdir]}}


def run_pyhost(pyhost, policy, module, runner_path, timeout):
    workdir = tempfile.mkdtemp(prefix="fidelity-pyhost-")
    try:
        policy_arg = policy
        if policy == "strict":
            policy_arg = os.path.join(workdir, "policy.json")
            with open(policy_arg, "w") as f:
                json.dump(strict_for_tests(os.path.realpath(workdir)), f)
        command = [pyhost, "exec", "--policy", policy_arg, "--max-output-bytes", "65536",
                   "--args", json.dumps({"module": module}), runner_path]
        done = subprocess.run(command, cwd=workdir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            return None, "pyhost printed no JSON (exit %d): %s" % (
                done.returncode, done.stderr.decode(errors="replace")[-500:])
        if not answer.get("ok") or not isinstance(answer.get("result"), dict):
            error = answer.get("error") or {}
            return None, "the runner failed: %s: %s" % (error.get("type"), error.get("message"))
        return answer["result"], None
    except subprocess.TimeoutExpired:
        return None, "no answer after %d s" % timeout
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_plain(module, runner_path, shim_path, timeout):
    workdir = tempfile.mkdtemp(prefix="fidelity-plain-")
    try:
        done = subprocess.run([PYTHON, shim_path, runner_path, module], cwd=workdir,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
        out = done.stdout.decode(errors="replace")
        at = out.rfind("@@FIDELITY@@")
        if at < 0:
            return None, "python3 printed no result (exit %d): %s" % (
                done.returncode, done.stderr.decode(errors="replace")[-500:])
        return json.loads(out[at + len("@@FIDELITY@@"):]), None
    except subprocess.TimeoutExpired:
        return None, "no answer after %d s" % timeout
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def compare(plain, hosted):
    """(number of test ids, matching, [(id, plain outcome, hosted outcome, detail)])."""
    ids = sorted(set(plain["outcomes"]) | set(hosted["outcomes"]))
    differ = []
    for test_id in ids:
        a = plain["outcomes"].get(test_id, "missing")
        b = hosted["outcomes"].get(test_id, "missing")
        if a != b:
            detail = hosted["details"].get(test_id) or plain["details"].get(test_id, "")
            differ.append((test_id, a, b, detail))
    return len(ids), len(ids) - len(differ), differ


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="test modules (default: the list in this script)")
    parser.add_argument("--fast", action="store_true", help="the CI subset: %s" % ", ".join(FAST_MODULES))
    parser.add_argument("--policy", action="append", help="yolo (default), strict, or a policy file")
    parser.add_argument("--pyhost", default=DEFAULT_PYHOST, help="the pyhost binary (%(default)s)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per module and run")
    parser.add_argument("--json", help="write every outcome to this file")
    parser.add_argument("--max-differ", type=int, help="exit 1 if more tests differ than this")
    parser.add_argument("--fail-unexplained", action="store_true",
                        help="exit 1 if a difference has no known cause (for CI)")
    options = parser.parse_args()
    modules = options.modules or (FAST_MODULES if options.fast else MODULES)
    policies = options.policy or ["yolo"]
    if not os.access(options.pyhost, os.X_OK):
        sys.exit("no pyhost binary at %s (build it: cmake --build build --target pyhost_cli)" % options.pyhost)

    scratch = tempfile.mkdtemp(prefix="fidelity-")
    runner_path = os.path.join(scratch, "runner.py")
    shim_path = os.path.join(scratch, "shim.py")
    with open(runner_path, "w") as f:
        f.write(RUNNER)
    with open(shim_path, "w") as f:
        f.write(PLAIN_SHIM)

    started = time.monotonic()
    report = {}
    broken = False
    totals = {policy: [0, 0, 0] for policy in policies}
    causes = {policy: {} for policy in policies}
    for module in modules:
        plain, problem = run_plain(module, runner_path, shim_path, options.timeout)
        if plain is None:
            print("%s: plain python3 did not run it: %s" % (module, problem))
            broken = True
            continue
        for policy in policies:
            hosted, problem = run_pyhost(options.pyhost, policy, module, runner_path, options.timeout)
            if hosted is None:
                print("%s [%s]: pyhost did not run it: %s" % (module, policy, problem))
                broken = True
                continue
            count, same, differ = compare(plain, hosted)
            for i, n in enumerate((count, same, len(differ))):
                totals[policy][i] += n
            report.setdefault(module, {})[policy] = {"plain": plain, "pyhost": hosted}
            print("%s [%s]: %d tests, %d match, %d differ" % (module, policy, count, same, len(differ)))
            for test_id, a, b, detail in differ:
                cause = cause_of(test_id, detail)
                causes[policy][cause] = causes[policy].get(cause, 0) + 1
                print("    %s: python3 %s, pyhost %s%s%s" % (
                    test_id, a, b, "  (%s)" % detail if detail else "",
                    "" if cause else "  [UNEXPLAINED]"))
            sys.stdout.flush()
    shutil.rmtree(scratch, ignore_errors=True)
    if options.json:
        with open(options.json, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
    elapsed = time.monotonic() - started
    exceeded = False
    for policy in policies:
        count, same, differ = totals[policy]
        for label, n in sorted(causes[policy].items(), key=lambda item: (item[0] is None, -item[1])):
            print("[%s] %5d  %s" % (policy, n, label or "unexplained (see [UNEXPLAINED] above)"))
        print("[%s] %d modules: %d tests, %d match, %d differ (%.1f%% match)%s" % (
            policy, len(modules), count, same, differ, 100.0 * same / count if count else 0.0,
            "" if len(policies) > 1 else " in %.0f s" % elapsed))
        exceeded = exceeded or (options.max_differ is not None and differ > options.max_differ)
        exceeded = exceeded or (options.fail_unexplained and None in causes[policy])
    if len(policies) > 1:
        print("%.0f s" % elapsed)
    return 1 if broken or exceeded else 0


if __name__ == "__main__":
    sys.exit(main())
