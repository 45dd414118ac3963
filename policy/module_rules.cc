#include "policy/module_rules.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

bool IsAnyOf(const std::vector<std::string>& names, absl::string_view module) {
  for (const std::string& name : names) {
    if (module == name) return true;
  }
  return false;
}

}  // namespace

bool InPackage(absl::string_view name, absl::string_view package) {
  return absl::StartsWith(name, package) &&
         (name.size() == package.size() || name[package.size()] == '.');
}

bool ModuleMatches(absl::string_view pattern, absl::string_view module) {
  return pattern == "*" || InPackage(module, pattern);
}

bool AnyModuleMatches(const std::vector<std::string>& patterns, absl::string_view module) {
  for (const std::string& pattern : patterns) {
    if (ModuleMatches(pattern, module)) return true;
  }
  return false;
}

// Modules that are dangerous in-process whatever the policy says they are for, so
// refused even when the stdlib asks for them: native code and memory, process
// creation without an audit event, the host process's own state (crash handlers,
// rlimits, allocation tracing), code loading from bytes, terminals, the
// host's accounts and logs, files opened in C without an audit event (dbm's C
// backends). docs/security.md has the table with each reason.
// subprocess, signal, pickle, sqlite3, pkgutil, pdb are not here: the stdlib imports
// them (asyncio, unittest, doctest) and what they reach is checked (audit hook,
// hardened functions, SQLite's authorizer).
const std::vector<std::string>& DangerousModules() {
  static const auto* modules = new std::vector<std::string>{"ctypes",
                                                            "_ctypes",
                                                            "multiprocessing",
                                                            "_multiprocessing",
                                                            "_posixshmem",
                                                            "pty",
                                                            "faulthandler",
                                                            "mmap",
                                                            "resource",
                                                            "fcntl",
                                                            "termios",
                                                            "tty",
                                                            "marshal",
                                                            "_xxsubinterpreters",
                                                            "_xxinterpchannels",
                                                            "_testcapi",
                                                            "_testinternalcapi",
                                                            "sys.monitoring",
                                                            "zipimport",
                                                            "runpy",
                                                            "webbrowser",
                                                            "tkinter",
                                                            "_tkinter",
                                                            "readline",
                                                            "curses",
                                                            "_curses",
                                                            "pwd",
                                                            "grp",
                                                            "spwd",
                                                            "crypt",
                                                            "syslog",
                                                            "tracemalloc",
                                                            "_tracemalloc",
                                                            "_dbm",
                                                            "_gdbm"};
  return *modules;
}

// The stdlib modules for computation, data and text handling, time, async code and
// testing: what they can reach outside the execution is checked like the code's own
// calls (docs/security.md, "The strict profile", says what is left out and why).
const std::vector<std::string>& CuratedStdlib() {
  static const auto* modules = new std::vector<std::string>{
      // the language and the interpreter
      "__future__", "builtins", "sys", "os", "os.path", "posix", "posixpath", "errno", "stat",
      "abc", "types", "typing", "dataclasses", "enum", "functools", "operator", "itertools",
      "contextlib", "contextvars", "copy", "copyreg", "weakref", "warnings", "traceback",
      "linecache", "inspect", "dis", "ast", "tokenize", "token", "keyword", "symtable", "sysconfig",
      "platform", "threading", "queue", "_strptime",
      "gc",  // collect(), thresholds (per interpreter); heap walks are refused (audit hook)
      // numbers
      "math", "cmath", "decimal", "fractions", "numbers", "random", "statistics", "secrets",
      // data structures and formats
      "array", "bisect", "heapq", "collections", "graphlib", "struct", "json", "csv", "pickle",
      "pickletools", "sqlite3", "configparser", "tomllib", "plistlib", "xml", "html", "email",
      "mailbox", "netrc", "xdrlib", "uu", "quopri", "base64", "binascii", "hashlib", "hmac", "uuid",
      "ipaddress", "urllib.parse", "mimetypes", "colorsys", "wave", "chunk", "aifc", "sunau",
      "audioop", "imghdr", "sndhdr", "pyexpat",
      // text
      "re", "string", "stringprep", "textwrap", "difflib", "unicodedata", "codecs", "_codecs",
      "encodings", "locale", "gettext", "shlex", "pprint", "reprlib",
      // time
      "time", "datetime", "calendar", "zoneinfo", "sched", "timeit",
      // files in the execution's own directories, and archives
      "io", "pathlib", "fnmatch", "glob", "tempfile", "shutil", "filecmp", "fileinput", "zlib",
      "gzip", "bz2", "lzma", "zipfile", "tarfile",
      // programs: async code, command lines, logging, tests, profiling
      "asyncio", "concurrent.futures", "argparse", "getopt", "optparse", "logging", "unittest",
      "doctest", "cProfile", "profile", "pstats"};
  return *modules;
}

// Some are on DangerousModules too: those the enforcing profiles deny anyway; these
// are refused under yolo as well.
const std::vector<std::string>& NeverImportableModules() {
  static const auto* modules = new std::vector<std::string>{
      "_xxsubinterpreters", "_xxinterpchannels",   "_testcapi",   "_testinternalcapi",
      "_testmultiphase",    "_testimportmultiple", "_testbuffer", "_testclinic",
      "_ctypes_test",       "_xxtestfuzz",         "faulthandler"};
  return *modules;
}

bool NeverImportable(absl::string_view module) {
  return AnyModuleMatches(NeverImportableModules(), module);
}

const std::vector<std::string>& ProcessStateModules() {
  static const auto* modules = new std::vector<std::string>{"_decimal", "_asyncio", "_zoneinfo"};
  return *modules;
}

bool SharesProcessState(absl::string_view module) { return IsAnyOf(ProcessStateModules(), module); }

const std::vector<std::string>& NetworkModules() {
  static const auto* modules =
      new std::vector<std::string>{"socket",         "_socket",      "ssl",
                                   "_ssl",           "select",       "selectors",
                                   "urllib.request", "urllib.error", "urllib.response",
                                   "http",           "http.client",  "email",
                                   "base64"};
  return *modules;
}

bool UnlockedByNetworkAllowlist(absl::string_view module) {
  return IsAnyOf(NetworkModules(), module);
}

bool JudgeImport(const Policy& policy, absl::string_view module, const ImportContext& context,
                 std::string* why) {
  if (NeverImportable(module)) {
    *why = absl::StrCat("import of '", module,
                        "' is never allowed in pyhost (it can run code "
                        "outside this interpreter or crash the host)");
    return false;
  }
  if (SharesProcessState(module)) {
    *why = absl::StrCat("import of '", module,
                        "' is never allowed in pyhost: its state is "
                        "shared by every interpreter of the process on Python 3.11 (the "
                        "stdlib uses its pure-Python version instead)");
    return false;
  }
  if (!policy.enforce) return true;
  if (!context.sysconfig_data_module.empty() && module == context.sysconfig_data_module) {
    module = "sysconfig";
  }
  if (module == "__main__") return true;  // the code's own module (pickle imports it)
  const bool denied = AnyModuleMatches(policy.import_deny, module);
  // A module on the deny list stays out even when an allowed module asks for it (an
  // allowed module may import names it is given: xml.sax parsers, pickle classes).
  if (!context.user_initiated) {
    if (!denied) return true;
    *why = absl::StrCat("import of '", module, "' is denied by policy '", policy.name,
                        "' (on its deny list, also for the standard library)");
    return false;
  }
  if (policy.ImportAllowed(module)) return true;
  // An allowlist is useless without the modules that connect: with one in force,
  // they may be imported (what they reach is still checked, host by host).
  if (!denied && (!policy.network.empty() || context.extra_network) &&
      UnlockedByNetworkAllowlist(module)) {
    return true;
  }
  *why = absl::StrCat("import of '", module, "' is not allowed by policy '", policy.name, "' (",
                      denied ? "on its deny list" : "not on its allow list", ")");
  return false;
}

bool JudgeUnencodableImport(const Policy& policy, absl::string_view shown, std::string* why) {
  if (!policy.enforce) return true;
  *why = absl::StrCat("import of '", shown, "' is not allowed by policy '", policy.name,
                      "' (a module name that is not valid UTF-8 text matches no rule)");
  return false;
}

}  // namespace pyhost
