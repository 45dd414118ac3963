// C stack exhaustion through C-level recursion Python 3.11 does not count (issue 7,
// class 6; guards/c_stack.h). Each case builds a deep chain and uses or frees it:
// plain python3 dies with SIGSEGV on every one. Each runs in the built `pyhost exec`
// (a process of its own), which must answer: the chain works, or the code gets a
// RecursionError; never a signal.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/testing/files.h"
#include "tests/testing/process.h"

#ifndef PYHOST_BINARY
#error "PYHOST_BINARY must name the pyhost executable"
#endif

namespace pyhost {
namespace {

using json = nlohmann::json;

enum class Expect {
  kRecursionError,  // refused with RecursionError (using the chain recurses)
  kWorks,           // works (freeing a chain, or a chain that fits)
};

struct Case {
  std::string name;
  std::string code;  // N is the chain's length
  Expect expect;
  std::string policy = "strict";
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

constexpr int kDepth = 400000;

struct Outcome {
  int status = -1;
  json answer;
};

Outcome RunPyhost(const std::string& code, const std::string& policy) {
  std::string path =
      testutil::MakeTempFile("/tmp/c-stack-", absl::StrCat("N = ", kDepth, "\n", code));
  // The chains hold up to a GB or more and take seconds to build: the limits are not
  // what is tested here, so the case's policy is extended with ceilings that let them.
  std::string policy_file = testutil::MakeTempFile(
      "/tmp/c-stack-policy-",
      absl::StrCat(R"({"extends": ")", policy,
                   R"(", "limits": {"timeout_ms": 600000, "cpu_ms": 600000, "memory_mb": 8192}})"));
  // A hang is a failure too (generous: slow machines, big chains).
  std::string command =
      absl::StrCat("timeout 630 ", PYHOST_BINARY, " exec --policy ", policy_file,
                   " --memory-mb 8192 --timeout-ms 600000 ", path, " 2>/dev/null");
  testutil::ShellResult run = testutil::RunShell(command);
  unlink(path.c_str());
  unlink(policy_file.c_str());
  Outcome outcome;
  outcome.status = run.status;
  outcome.answer = json::parse(run.output, nullptr, /*allow_exceptions=*/false);
  return outcome;
}

class CStackTest : public ::testing::TestWithParam<Case> {};

TEST_P(CStackTest, TheHostAnswers) {
  const Case& c = GetParam();
  Outcome o = RunPyhost(c.code, c.policy);
  ASSERT_TRUE(WIFEXITED(o.status))
      << c.name << ": pyhost died"
      << (WIFSIGNALED(o.status) ? absl::StrCat(" by signal ", WTERMSIG(o.status)) : "");
  ASSERT_TRUE(o.answer.is_object()) << c.name << ": no JSON answer";
  if (c.expect == Expect::kWorks) {
    EXPECT_EQ(o.answer["ok"], json(true)) << o.answer.dump();
    EXPECT_EQ(o.answer["result"], json("done")) << o.answer.dump();
  } else {
    EXPECT_EQ(o.answer["ok"], json(false)) << o.answer.dump();
    EXPECT_EQ(o.answer["error"]["type"], json("RecursionError")) << o.answer.dump();
  }
}

// Builds the chain `make(m)` N times from `seed`, then runs `use`.
// Chains that only crash when freed need more links (a deallocation's C frame is small).
Case Chain(std::string name, std::string seed, std::string make, std::string use, Expect expect,
           std::string imports = "") {
  const char* links = expect == Expect::kWorks ? "4 * N" : "N";
  return Case{std::move(name),
              absl::StrCat(imports, "m = ", seed, "\nfor i in range(", links, "):\n    m = ", make,
                           "\n", use, "\nresult = 'done'\n"),
              expect};
}

// Using the chain recurses once per link.
Case Used(std::string name, std::string seed, std::string make, std::string use,
          std::string imports = "") {
  return Chain(std::move(name), std::move(seed), std::move(make), std::move(use),
               Expect::kRecursionError, std::move(imports));
}

// Freeing the chain recurses once per link (python3: SIGSEGV at exit or at del).
Case Freed(std::string name, std::string seed, std::string make, std::string imports = "") {
  return Chain(std::move(name), std::move(seed), std::move(make), "del m", Expect::kWorks,
               std::move(imports));
}

std::vector<Case> AllCases() {
  const std::string it = "import itertools\n";
  return {
      // Iterators that pull from another iterator's tp_iternext.
      Used("Map", "[1]", "map(abs, m)", "next(m)"),
      Used("MapConsumedBySum", "[1]", "map(abs, m)", "sum(m)"),
      Used("Filter", "[1]", "filter(None, m)", "list(m)"),
      Used("Zip", "[1]", "zip(m)", "next(m)"),
      Used("ZipStrict", "[1]", "zip(m, strict=True)", "next(m)"),
      Used("Enumerate", "[1]", "enumerate(m)", "next(m)"),
      Used("Chain", "[1]", "itertools.chain(m)", "next(m)", it),
      Used("Islice", "[1]", "itertools.islice(m, 5)", "next(m)", it),
      Used("Takewhile", "[1]", "itertools.takewhile(bool, m)", "next(m)", it),
      Used("Dropwhile", "[1]", "itertools.dropwhile(bool, m)", "next(m, None)", it),
      Used("Starmap", "[(1,)]", "itertools.starmap(lambda x: (x,), m)", "next(m)", it),
      Used("Accumulate", "[1]", "itertools.accumulate(m)", "next(m)", it),
      Used("CompressData", "[1]", "itertools.compress(m, itertools.repeat(1))", "next(m)", it),
      Used("CompressSelectors", "[1]", "itertools.compress(itertools.repeat(1), m)", "next(m)", it),
      Used("Filterfalse", "[0]", "itertools.filterfalse(None, m)", "next(m)", it),
      Used("ZipLongest", "[1]", "itertools.zip_longest(m)", "next(m)", it),
      Used("Cycle", "[1]", "itertools.cycle(m)", "next(m)", it),
      Used("Pairwise", "[1, 2, 3]", "itertools.pairwise(m)", "next(m)", it),
      Used("Groupby", "[1]", "itertools.groupby(m)", "next(m)", it),
      Used("Tee", "[1]", "itertools.tee(map(abs, m))[0]", "next(m)", it),
      // Made and used without recursing (tail calls); python3 dies freeing them.
      Chain("GroupbyGrouper", "[1]", "next(itertools.groupby(m))[1]", "next(m)", Expect::kWorks,
            it),
      Used("MixedKinds", "[1]",
           "[map(abs, m), filter(None, m), zip(m), itertools.chain(m), enumerate(m)][i % 5]",
           "next(m)", it),
      Used("CsvReader", "['a']", "csv.reader(m)", "next(m)", "import csv\n"),
      // Descriptors, mappings, hashing, attribute lookups.
      Used("ClassmethodGet", "abs", "classmethod(m)", "m.__get__(None, int)"),
      Chain("MappingproxyGetitem", "{1: 2}", "types.MappingProxyType(m)", "m[1]", Expect::kWorks,
            "import types\n"),
      Chain("MappingproxyLen", "{1: 2}", "types.MappingProxyType(m)", "len(m)", Expect::kWorks,
            "import types\n"),
      Chain("MappingproxyContains", "{1: 2}", "types.MappingProxyType(m)", "1 in m", Expect::kWorks,
            "import types\n"),
      Used("MappingproxyIter", "{1: 2}", "types.MappingProxyType(m)", "iter(m)", "import types\n"),
      Chain("MappingproxyFormatMap", "{'a': 2}", "types.MappingProxyType(m)", "'{a}'.format_map(m)",
            Expect::kWorks, "import types\n"),
      Used("MappingproxyOr", "{1: 2}", "types.MappingProxyType(m)", "m | {}", "import types\n"),
      Used("TupleHash", "()", "(m,)", "hash(m)"),
      Used("TupleAsDictKey", "()", "(m, 1)", "{m: 1}"),
      Used("StructSequenceHash", "0", "time.struct_time((m,) * 9)", "hash(m)", "import time\n"),
      Freed("FreeStructSequence", "0", "time.struct_time((m,) * 9)", "import time\n"),
      Used("GenericAliasParameters", "int", "list[m]", "m.__parameters__"),
      Used("GenericAliasHash", "int", "list[m]", "hash(m)"),
      Used("GenericAliasGetattr", "list", "types.GenericAlias(m, ())", "m.missing",
           "import types\n"),
      // Bound methods of bound methods: refused when made (their calls are vectorcalls).
      Used("MethodTypeCall", "abs", "types.MethodType(m, 1)", "m()", "import types\n"),
      // classmethod(m).__get__ binds m: each one looks up __doc__ through the whole
      // chain, so a chain deep enough to crash takes hours to make; the limit holds here too.
      Case{"ClassmethodBoundMethods",
           "m = abs\nfor i in range(1500):\n    m = classmethod(m).__get__(None, int)\nresult = "
           "'done'\n",
           Expect::kRecursionError},
      // Deallocation of chains without CPython's trashcan.
      Freed("FreeFilter", "[1]", "filter(None, m)"),
      Freed("FreeEnumerate", "[1]", "enumerate(m)"),
      Freed("FreeIslice", "[1]", "itertools.islice(m, 1)", it),
      Freed("FreeTakewhile", "[1]", "itertools.takewhile(bool, m)", it),
      Freed("FreeRepeat", "None", "itertools.repeat(m)", it),
      Freed("FreeClassmethod", "None", "classmethod(m)"),
      Freed("FreeStaticmethod", "None", "staticmethod(m)"),
      Freed("FreeProperty", "None", "property(m)"),
      Freed("FreeMappingproxy", "{}", "types.MappingProxyType(m)", "import types\n"),
      Freed("FreeCell", "None", "types.CellType(m)", "import types\n"),
      Freed("FreeSlice", "None", "slice(m)"),
      Freed("FreeCalliterSentinel", "None", "iter(abs, m)"),
      Freed("FreeSuper", "1", "super(type(m), m) if isinstance(m, super) else super(int, m)"),
      Freed("FreeDeque", "None", "collections.deque([m])", "import collections\n"),
      Freed("FreeDefaultdict", "None", "collections.defaultdict(None, {1: m})",
            "import collections\n"),
      Freed("FreeTuplegetter", "None", "collections._tuplegetter(0, m)", "import collections\n"),
      Freed("FreeItemgetter", "None", "operator.itemgetter(m)", "import operator\n"),
      Freed("FreeCmpToKey", "None", "functools.cmp_to_key(m)", "import functools\n"),
      Freed("FreeCsvReader", "['a']", "csv.reader(m)", "import csv\n"),
      Case{"FreeOSErrorCauses",
           "m = None\nfor i in range(4 * N):\n    x = OSError()\n    x.__cause__ = m\n    m = x\n"
           "del m, x\nresult = 'done'\n",
           Expect::kWorks},
      Case{"FreeWeakrefCallbacks",
           "import weakref\nclass A: pass\na = A()\nm = weakref.ref(a, print)\n"
           "for i in range(4 * N):\n    m = weakref.ref(a, m)\ndel m\nresult = 'done'\n",
           Expect::kWorks},
      // Started generators: freeing one closes it, which frees the next one inside.
      Case{"GeneratorExpressions",
           "m = iter([1])\nfor i in range(N // 8):\n    m = (x for x in m)\n"
           "try:\n    next(m)\nexcept RecursionError:\n    pass\ndel m\nresult = 'done'\n",
           Expect::kWorks},
      Case{"YieldFrom",
           "def g(it):\n    yield from it\nm = iter([1])\nfor i in range(N // 8):\n    m = g(m)\n"
           "try:\n    next(m)\nexcept RecursionError:\n    pass\ndel m\nresult = 'done'\n",
           Expect::kWorks},
      Case{"AwaitChain",
           "import types\n@types.coroutine\ndef leaf():\n    yield 1\nasync def w(c):\n    return "
           "await c\n"
           "m = leaf()\nfor i in range(N):\n    m = w(m)\n"
           "try:\n    m.send(None)\nexcept RecursionError:\n    pass\ndel m\nresult = 'done'\n",
           Expect::kWorks, "yolo"},
      // What fits works as in python3.
      Case{"ModerateChainsWork",
           "import itertools, types\nm = [1]\nfor i in range(20000):\n    m = map(abs, "
           "itertools.chain(m))\n"
           "assert list(m) == [1]\nt = ()\nfor i in range(20000):\n    t = (t,)\nhash(t)\n"
           "f = abs\nfor i in range(900):\n    f = types.MethodType(f, 1)\nhash(f)\nresult = "
           "'done'\n",
           Expect::kWorks},
  };
}

INSTANTIATE_TEST_SUITE_P(Crashers, CStackTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace pyhost
