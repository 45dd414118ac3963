#include "pyhost/policy.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

TEST(PolicyTest, ProfilesExist) {
  for (const char* name : {"yolo", "balanced", "data_science", "strict", "enterprise"}) {
    absl::StatusOr<Policy> policy = NamedPolicy(name);
    ASSERT_TRUE(policy.ok()) << name;
    EXPECT_EQ(policy->name, name);
  }
  absl::StatusOr<Policy> unknown = NamedPolicy("lenient");
  ASSERT_TRUE(absl::IsNotFound(unknown.status()));
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("yolo, balanced"));
}

TEST(PolicyTest, StrictAllowsCuratedStdlibOnly) {
  Policy strict = *NamedPolicy("strict");
  for (const char* allowed : {"json", "json.decoder", "re", "math", "os", "xml.etree.ElementTree",
                              "xml", "email.mime.text", "urllib.parse", "urllib"}) {
    EXPECT_TRUE(strict.ImportAllowed(allowed)) << allowed;
  }
  // What LLM-written programs use for computation, data, async code and tests
  // (issue 7, item 20); what they reach outside is checked, not the import.
  for (const char* allowed :
       {"__future__", "asyncio", "unittest.mock", "pickle", "sqlite3", "logging", "argparse",
        "zoneinfo", "mimetypes", "doctest", "concurrent.futures", "sysconfig", "gc"}) {
    EXPECT_TRUE(strict.ImportAllowed(allowed)) << allowed;
  }
  for (const char* denied : {"socket", "subprocess", "ctypes", "urllib.request", "http.client",
                             "importlib", "multiprocessing.pool", "signal", "atexit", "pdb", "_dbm",
                             "_gdbm", "mmap", "shelve", "dbm"}) {
    EXPECT_FALSE(strict.ImportAllowed(denied)) << denied;
  }
  EXPECT_THAT(strict.read_paths, ::testing::Contains("/usr/share/zoneinfo"));
  EXPECT_THAT(strict.read_paths, ::testing::Contains("/etc/mime.types"));
  EXPECT_FALSE(strict.processes);
  EXPECT_FALSE(strict.threads);
  EXPECT_TRUE(strict.network.empty());
  EXPECT_TRUE(strict.work_dir);
}

TEST(PolicyTest, DenyWinsAndYoloAllowsAll) {
  Policy balanced = *NamedPolicy("balanced");
  EXPECT_TRUE(balanced.ImportAllowed("socket"));
  EXPECT_FALSE(balanced.ImportAllowed("ctypes.util"));
  Policy yolo = *NamedPolicy("yolo");
  EXPECT_FALSE(yolo.enforce);
  EXPECT_TRUE(yolo.ImportAllowed("ctypes"));
  Policy both;
  both.import_allow = {"*"};
  both.import_deny = {"json"};
  EXPECT_FALSE(both.ImportAllowed("json.decoder"));
  EXPECT_TRUE(both.ImportAllowed("jsonschema"));  // patterns match whole names
}

TEST(PolicyTest, FromJsonExtendsTheProfilesLists) {
  absl::StatusOr<Policy> policy = PolicyFromJson(json::parse(R"({
    "name": "team", "extends": "strict",
    "imports": {"allow": ["mylib", "json"], "deny": ["csv"]},
    "files": {"read": ["/srv/data"], "write": ["/srv/out"], "work_dir": false},
    "network": ["api.example.com", "*.corp.example"], "env": ["LANG"], "threads": true
  })"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  Policy strict = *NamedPolicy("strict");
  EXPECT_EQ(policy->name, "team");
  EXPECT_TRUE(policy->ImportAllowed("mylib"));
  EXPECT_TRUE(policy->ImportAllowed("json"));  // strict's list is kept
  EXPECT_TRUE(policy->ImportAllowed("re"));
  EXPECT_FALSE(policy->ImportAllowed("csv"));     // added to strict's deny list
  EXPECT_FALSE(policy->ImportAllowed("ctypes"));  // strict's deny list is kept
  EXPECT_EQ(policy->import_allow.size(), strict.import_allow.size() + 1);  // json once
  for (const std::string& path : strict.read_paths) {
    EXPECT_THAT(policy->read_paths, ::testing::Contains(path));
  }
  EXPECT_THAT(policy->read_paths, ::testing::Contains("/srv/data"));
  EXPECT_EQ(policy->write_paths.back(), "/srv/out");
  EXPECT_FALSE(policy->work_dir);
  EXPECT_TRUE(policy->threads);
  EXPECT_EQ(policy->network, (std::vector<std::string>{"api.example.com", "*.corp.example"}));
  EXPECT_EQ(policy->env, std::vector<std::string>{"LANG"});
  // And back through its JSON form.
  absl::StatusOr<Policy> again = PolicyFromJson(policy->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), policy->ToJson());
}

// The issue's reproducer: allowing one more module must not take strict's away.
TEST(PolicyTest, ExtendingStrictWithOneModuleKeepsJson) {
  absl::StatusOr<Policy> policy =
      PolicyFromJson(json::parse(R"({"extends": "strict", "imports": {"allow": ["unittest"]}})"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->ImportAllowed("json"));
  EXPECT_TRUE(policy->ImportAllowed("unittest"));
}

TEST(PolicyTest, ExtendingAnAllowEverythingProfileDoesNotNarrowIt) {
  absl::StatusOr<Policy> policy =
      PolicyFromJson(json::parse(R"({"extends": "balanced", "imports": {"allow": ["json"]}})"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->import_allow.empty());
  EXPECT_TRUE(policy->ImportAllowed("csv"));
  EXPECT_FALSE(policy->ImportAllowed("ctypes"));  // balanced's deny list
  // Without a profile to extend, the list is the one given.
  EXPECT_FALSE(
      PolicyFromJson(json::parse(R"({"imports": {"allow": ["json"]}})"))->ImportAllowed("csv"));
}

TEST(PolicyTest, ReplaceNamesTheListsGivenExactly) {
  absl::StatusOr<Policy> policy = PolicyFromJson(json::parse(R"({
    "extends": "strict", "replace": ["imports.allow", "imports.deny", "files.read", "env"],
    "imports": {"allow": ["json"]}, "files": {"read": ["/srv/data"]}, "network": ["a.example"]
  })"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->import_allow, std::vector<std::string>{"json"});
  EXPECT_FALSE(policy->ImportAllowed("re"));
  EXPECT_TRUE(policy->import_deny.empty());  // named in replace, not given: empty
  EXPECT_EQ(policy->read_paths, std::vector<std::string>{"/srv/data"});
  EXPECT_EQ(policy->write_paths, NamedPolicy("strict")->write_paths);  // not named: strict's
  EXPECT_EQ(policy->network, std::vector<std::string>{"a.example"});
  EXPECT_TRUE(policy->env.empty());
}

TEST(PolicyTest, InvalidPoliciesNameTheField) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {R"([1])", "must be a JSON object"},
      {R"({"netwrok": ["*"]})", "unknown policy field 'netwrok'"},
      {R"({"imports": {"alow": []}})", "unknown policy field 'imports.alow'"},
      {R"({"extends": "lenient"})", "'extends': unknown policy 'lenient'"},
      {R"({"processes": "yes"})", "'processes' must be true or false"},
      {R"({"network": "api.example.com"})", "'network' must be an array"},
      {R"({"files": {"write": ["relative/dir"]}})", "'files.write' must be absolute paths"},
      {R"({"limits": {"timeout_ms": -5}})", "'limits.timeout_ms' must be a positive integer"},
      {R"({"env": [""]})", "'env' must be an array of non-empty strings"},
      {R"({"name": ""})", "'name' must be a non-empty string"},
      {R"({"replace": "imports.allow"})", "'replace' must be an array"},
      {R"({"replace": ["imports"]})", "'replace' names 'imports', which is not a list field"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Policy> policy = PolicyFromJson(json::parse(c.text));
    ASSERT_FALSE(policy.ok()) << c.text;
    EXPECT_THAT(std::string(policy.status().message()), HasSubstr(c.error)) << c.text;
  }
}

TEST(PolicyTest, LoadPolicyReadsNamesAndFiles) {
  EXPECT_EQ(LoadPolicy("enterprise")->name, "enterprise");
  std::string path = ::testing::TempDir() + "/pyhost_policy_test.json";
  std::ofstream(path) << R"({"extends": "yolo", "name": "from-file"})";
  absl::StatusOr<Policy> loaded = LoadPolicy(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->name, "from-file");
  EXPECT_FALSE(loaded->enforce);
  std::ofstream(path) << "{not json";
  EXPECT_THAT(std::string(LoadPolicy(path).status().message()), HasSubstr("not valid JSON"));
  std::remove(path.c_str());
  EXPECT_TRUE(absl::IsNotFound(LoadPolicy("/nonexistent/policy.json").status()));
}

// Policy files are JSON text from outside: bounded nesting, exact integers.
TEST(PolicyTest, PolicyFileTooDeepOrWithIntegersPast64BitsIsAClearError) {
  std::string path = ::testing::TempDir() + "/pyhost_policy_bounds_test.json";
  std::ofstream(path) << "{\"name\": " << std::string(70000, '[') << std::string(70000, ']') << "}";
  EXPECT_THAT(std::string(LoadPolicy(path).status().message()),
              HasSubstr("nested deeper than 256 levels of arrays and objects (at name[0]"));
  std::ofstream(path) << R"({"extends": "strict", "limits": {"timeout_ms": 18446744073709551616}})";
  EXPECT_THAT(std::string(LoadPolicy(path).status().message()),
              HasSubstr("limits.timeout_ms: integer 18446744073709551616 does not fit in 64 bits"));
  std::ofstream(path) << R"({"extends": "strict", "limits": {"timeout_ms": 18446744073709551615}})";
  EXPECT_THAT(
      std::string(LoadPolicy(path).status().message()),
      HasSubstr("'limits.timeout_ms' must be a positive integer up to 9223372036854775807"));
  std::remove(path.c_str());
}

// A policy path is read only if it is a regular file of at most kMaxPolicyFileBytes:
// /dev/zero would grow memory without end, a FIFO would block, a directory reads empty.
TEST(PolicyTest, LoadPolicyReadsOnlyBoundedRegularFiles) {
  for (const char* path : {"/dev/zero", "/usr/", "/dev/null"}) {
    absl::StatusOr<Policy> loaded = LoadPolicy(path);
    EXPECT_TRUE(absl::IsInvalidArgument(loaded.status())) << path << ": " << loaded.status();
    EXPECT_THAT(std::string(loaded.status().message()),
                HasSubstr(std::string("policy file '") + path + "': "))
        << loaded.status();
    EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("not a regular file"));
  }
  std::string fifo = ::testing::TempDir() + "/policy_test_fifo.json";
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(std::string(LoadPolicy(fifo).status().message()),
              HasSubstr("a FIFO, not a regular file"));
  std::remove(fifo.c_str());
  std::string big = ::testing::TempDir() + "/policy_test_big.json";
  std::ofstream(big) << R"({"extends": "strict"})" << std::string(kMaxPolicyFileBytes, ' ');
  EXPECT_THAT(std::string(LoadPolicy(big).status().message()),
              HasSubstr("larger than the limit of 1048576 bytes"));
  std::remove(big.c_str());
}

TEST(HostPatternTest, Seed000Semantics) {
  EXPECT_TRUE(HostMatches("api.openai.com", "api.openai.com"));
  EXPECT_TRUE(HostMatches("api.openai.com", "API.OpenAI.com."));
  EXPECT_FALSE(HostMatches("api.openai.com", "evil-api.openai.com"));
  EXPECT_TRUE(HostMatches("*.corp.example", "git.corp.example"));
  EXPECT_TRUE(HostMatches("*.corp.example", "a.b.corp.example"));
  EXPECT_FALSE(HostMatches("*.corp.example", "corp.example"));  // suffix only
  EXPECT_FALSE(HostMatches("*.example.com", "example.com.evil"));
  EXPECT_FALSE(HostMatches("*.example.com", "badexample.com"));
  EXPECT_TRUE(HostMatches("*", "anything.at.all"));
  EXPECT_FALSE(HostMatches("", "x"));
  EXPECT_TRUE(HostAllowed({"a.com", "*.b.com"}, "x.b.com"));
  EXPECT_FALSE(HostAllowed({}, "a.com"));
  EXPECT_EQ(SplitHostPatterns(" a.com, *.b.com ,,"),
            (std::vector<std::string>{"a.com", "*.b.com"}));
}

}  // namespace
}  // namespace pyhost
