#include "guards/policy.h"

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
  for (const char* denied : {"socket", "subprocess", "ctypes", "urllib.request", "http.client",
                             "pickle", "importlib", "multiprocessing.pool", "asyncio"}) {
    EXPECT_FALSE(strict.ImportAllowed(denied)) << denied;
  }
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

TEST(PolicyTest, FromJsonExtendsAndReplacesLists) {
  absl::StatusOr<Policy> policy = PolicyFromJson(json::parse(R"({
    "name": "team", "extends": "strict",
    "imports": {"allow": ["json"]},
    "files": {"read": ["/srv/data"], "work_dir": false},
    "network": ["api.example.com", "*.corp.example"], "env": ["LANG"], "threads": true
  })"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->name, "team");
  EXPECT_TRUE(policy->ImportAllowed("json"));
  EXPECT_FALSE(policy->ImportAllowed("re"));             // the list was replaced
  EXPECT_FALSE(policy->ImportAllowed("subprocess"));     // the deny list came from strict
  EXPECT_EQ(policy->read_paths, std::vector<std::string>{"/srv/data"});
  EXPECT_FALSE(policy->work_dir);
  EXPECT_TRUE(policy->threads);
  EXPECT_EQ(policy->env, std::vector<std::string>{"LANG"});
  // And back through its JSON form.
  absl::StatusOr<Policy> again = PolicyFromJson(policy->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), policy->ToJson());
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
  EXPECT_THAT(std::string(LoadPolicy(fifo).status().message()), HasSubstr("a FIFO, not a regular file"));
  std::remove(fifo.c_str());
  std::string big = ::testing::TempDir() + "/policy_test_big.json";
  std::ofstream(big) << R"({"extends": "strict"})" << std::string(kMaxPolicyFileBytes, ' ');
  EXPECT_THAT(std::string(LoadPolicy(big).status().message()), HasSubstr("larger than the limit of 1048576 bytes"));
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
  EXPECT_EQ(SplitHostPatterns(" a.com, *.b.com ,,"), (std::vector<std::string>{"a.com", "*.b.com"}));
}

}  // namespace
}  // namespace pyhost
