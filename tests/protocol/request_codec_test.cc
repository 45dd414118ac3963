// The request codec (protocol/request_codec.h): every field read from JSON and from
// its flag's text into the same place, and errors that name the field or flag.
// No Host involved.
#include "protocol/request_codec.h"

#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace pyhost::protocol {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Applies `flags` ({"--flag", "value"} pairs) to a request of type R through `fields`.
template <typename R>
R FromFlags(const std::vector<Field<R>>& fields,
            const std::vector<std::pair<std::string, std::string>>& flags) {
  R request;
  for (const auto& [flag, text] : flags) {
    const Field<R>* field = FieldForFlag(fields, flag);
    if (field == nullptr) {
      ADD_FAILURE() << "no field for " << flag;
      continue;
    }
    absl::Status read = field->from_text(text, request);
    EXPECT_TRUE(read.ok()) << flag << " " << text << ": " << read;
  }
  return request;
}

// The message of reading `text` for `flag` (which must fail).
template <typename R>
std::string FlagError(const std::vector<Field<R>>& fields, const std::string& flag,
                      const std::string& text) {
  const Field<R>* field = FieldForFlag(fields, flag);
  if (field == nullptr) return "no field for " + flag;
  R request;
  absl::Status read = field->from_text(text, request);
  EXPECT_FALSE(read.ok()) << flag << " " << text;
  return std::string(read.message());
}

std::string ExecError(const json& object) {
  absl::StatusOr<ExecRequest> request = ExecRequestFromJson(object);
  EXPECT_FALSE(request.ok()) << object.dump();
  return request.ok() ? "" : std::string(request.status().message());
}

template <typename R>
std::set<std::string> FlagsOf(const std::vector<Field<R>>& fields) {
  std::set<std::string> flags;
  for (const auto& field : fields) {
    if (!field.flag.empty()) flags.insert(field.flag);
  }
  return flags;
}

// ---------------------------------------------------------------------------------
// exec

TEST(ExecFieldsTest, EveryFieldFromJson) {
  absl::StatusOr<ExecRequest> request = ExecRequestFromJson({
      {"id", 7},
      {"op", "exec"},
      {"code", "result = 1"},
      {"args", {{"n", 2}}},
      {"policy", "balanced"},
      {"isolation", "resident"},
      {"timeout_ms", 100},
      {"cpu_ms", 200},
      {"memory_mb", 64},
      {"max_output_bytes", 4096},
      {"network_allowlist", {"api.example.com", "*.example.org"}},
  });
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->code, "result = 1");
  EXPECT_EQ(request->args, json({{"n", 2}}));
  ASSERT_TRUE(request->policy.has_value());
  EXPECT_EQ(request->policy->name, "balanced");
  EXPECT_EQ(request->isolation, Isolation::kResident);
  EXPECT_EQ(request->limits.timeout_ms, 100);
  EXPECT_EQ(request->limits.cpu_ms, 200);
  EXPECT_EQ(request->limits.memory_mb, 64);
  EXPECT_EQ(request->max_output_bytes, 4096u);
  EXPECT_THAT(request->allow_net, ElementsAre("api.example.com", "*.example.org"));
}

TEST(ExecFieldsTest, EveryFlagFromText) {
  ExecRequest request = FromFlags(ExecFields(), {{"--args", R"({"n": 2})"},
                                                 {"--policy", "balanced"},
                                                 {"--isolation", "resident"},
                                                 {"--timeout-ms", "100"},
                                                 {"--cpu-ms", "200"},
                                                 {"--memory-mb", "64"},
                                                 {"--max-output-bytes", "4096"},
                                                 {"--allow-net", "api.example.com"},
                                                 {"--allow-net", " *.example.org, ,"}});
  EXPECT_EQ(request.args, json({{"n", 2}}));
  ASSERT_TRUE(request.policy.has_value());
  EXPECT_EQ(request.policy->name, "balanced");
  EXPECT_EQ(request.isolation, Isolation::kResident);
  EXPECT_EQ(request.limits.timeout_ms, 100);
  EXPECT_EQ(request.limits.cpu_ms, 200);
  EXPECT_EQ(request.limits.memory_mb, 64);
  EXPECT_EQ(request.max_output_bytes, 4096u);
  // A flag given again adds patterns; each is split on commas like the JSON string.
  EXPECT_THAT(request.allow_net, ElementsAre("api.example.com", "*.example.org"));
}

// One table: a flag and its JSON field are the same field (the command's surface).
TEST(ExecFieldsTest, FlagsAreTheFieldsOfTheTable) {
  EXPECT_EQ(FlagsOf(ExecFields()),
            (std::set<std::string>{"--args", "--policy", "--isolation", "--timeout-ms", "--cpu-ms",
                                   "--memory-mb", "--max-output-bytes", "--allow-net"}));
  const Field<ExecRequest>* allow_net = FieldForFlag(ExecFields(), "--allow-net");
  ASSERT_NE(allow_net, nullptr);
  EXPECT_EQ(allow_net->name, "network_allowlist");
  EXPECT_EQ(allow_net->alias, "networkAllowlist");
  EXPECT_EQ(FieldForFlag(ExecFields(), "--timeout-ms")->name, "timeout_ms");
  // code is set by -c, FILE or -: argv walking, not a flag of the table.
  EXPECT_EQ(FieldForFlag(ExecFields(), ""), nullptr);
  EXPECT_EQ(FieldForFlag(ExecFields(), "code"), nullptr);
  EXPECT_EQ(FieldForFlag(ExecFields(), "--code"), nullptr);
  EXPECT_EQ(FieldForFlag(ExecFields(), "--bogus"), nullptr);
}

TEST(ExecFieldsTest, AbsentAndNullFieldsKeepTheDefaults) {
  for (const json& object : {json{{"code", "1"}}, json{{"code", "1"},
                                                       {"policy", nullptr},
                                                       {"isolation", nullptr},
                                                       {"timeout_ms", nullptr},
                                                       {"cpu_ms", nullptr},
                                                       {"memory_mb", nullptr},
                                                       {"max_output_bytes", nullptr},
                                                       {"network_allowlist", nullptr}}}) {
    absl::StatusOr<ExecRequest> request = ExecRequestFromJson(object);
    ASSERT_TRUE(request.ok()) << request.status();
    EXPECT_EQ(request->args, json::object()) << object.dump();
    EXPECT_FALSE(request->policy.has_value());
    EXPECT_EQ(request->isolation, Isolation::kFresh);
    EXPECT_FALSE(request->limits.timeout_ms || request->limits.cpu_ms || request->limits.memory_mb);
    EXPECT_FALSE(request->max_output_bytes.has_value());
    EXPECT_TRUE(request->allow_net.empty());
  }
  // args is any JSON value, null included (Python's None).
  absl::StatusOr<ExecRequest> null_args = ExecRequestFromJson({{"code", "1"}, {"args", nullptr}});
  ASSERT_TRUE(null_args.ok());
  EXPECT_TRUE(null_args->args.is_null());
}

TEST(ExecFieldsTest, NetworkAllowlistAsStringOrUnderItsOtherName) {
  absl::StatusOr<ExecRequest> text =
      ExecRequestFromJson({{"code", "1"}, {"network_allowlist", " a.com, *.b.com ,,"}});
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(text->allow_net, ElementsAre("a.com", "*.b.com"));
  absl::StatusOr<ExecRequest> camel =
      ExecRequestFromJson({{"code", "1"}, {"networkAllowlist", {"c.com"}}});
  ASSERT_TRUE(camel.ok());
  EXPECT_THAT(camel->allow_net, ElementsAre("c.com"));
}

TEST(ExecFieldsTest, JsonErrorsNameTheField) {
  EXPECT_EQ(ExecError(json::object()), "missing field 'code'");
  EXPECT_EQ(ExecError({{"code", 5}}), "field 'code' must be a string");
  EXPECT_EQ(ExecError({{"code", nullptr}}), "field 'code' must be a string");
  for (const char* field : {"timeout_ms", "cpu_ms", "memory_mb", "max_output_bytes"}) {
    for (const json& bad : {json(-5), json(0), json(1.5), json("10"), json(true)}) {
      EXPECT_EQ(ExecError({{"code", "1"}, {field, bad}}),
                absl::StrCat("field '", field, "' must be a positive integer"))
          << bad.dump();
    }
  }
  EXPECT_EQ(ExecError({{"code", "1"}, {"max_output_bytes", json::parse("9223372036854775808")}}),
            "field 'max_output_bytes' must be a positive integer up to 9223372036854775807, not "
            "9223372036854775808");
  EXPECT_EQ(ExecError({{"code", "1"}, {"isolation", 7}}),
            "field 'isolation' must be \"fresh\", \"resident\" or \"process\"");
  EXPECT_EQ(ExecError({{"code", "1"}, {"isolation", "bogus"}}),
            "field 'isolation': unknown isolation 'bogus' (expected fresh, resident or process)");
  EXPECT_EQ(ExecError({{"code", "1"}, {"policy", 3}}),
            "field 'policy' must be a name or an object");
  EXPECT_THAT(ExecError({{"code", "1"}, {"policy", "lenient"}}),
              HasSubstr("field 'policy': unknown policy 'lenient'"));
  EXPECT_THAT(ExecError({{"code", "1"}, {"policy", {{"bogus", true}}}}),
              HasSubstr("field 'policy': "));
  EXPECT_EQ(ExecError({{"code", "1"}, {"network_allowlist", 5}}),
            "field 'network_allowlist' must be an array of host patterns");
  EXPECT_EQ(ExecError({{"code", "1"}, {"networkAllowlist", {"a.com", 1}}}),
            "field 'networkAllowlist' must be an array of strings");
  EXPECT_EQ(ExecError(json::array()), "a request must be a JSON object");
}

TEST(ExecFieldsTest, FlagErrorsNameTheFlag) {
  EXPECT_EQ(FlagError(ExecFields(), "--timeout-ms", "soon"),
            "--timeout-ms takes a positive integer, got 'soon'");
  for (const char* flag : {"--cpu-ms", "--memory-mb", "--max-output-bytes"}) {
    EXPECT_EQ(FlagError(ExecFields(), flag, "0"),
              absl::StrCat(flag, " takes a positive integer, got '0'"));
  }
  EXPECT_EQ(FlagError(ExecFields(), "--isolation", "bogus"),
            "--isolation: unknown isolation 'bogus' (expected fresh, resident or process)");
  EXPECT_THAT(FlagError(ExecFields(), "--policy", "lenient"),
              HasSubstr("--policy: unknown policy 'lenient'"));
  EXPECT_THAT(FlagError(ExecFields(), "--policy", "/nonexistent/p.json"),
              HasSubstr("--policy: cannot read policy file"));
  EXPECT_THAT(FlagError(ExecFields(), "--args", "{bad"), HasSubstr("--args is not valid JSON"));
}

// Errors keep the code of the check that failed: serve answers by it.
TEST(ExecFieldsTest, ErrorsKeepTheirCode) {
  EXPECT_TRUE(
      absl::IsNotFound(ExecRequestFromJson({{"code", "1"}, {"policy", "lenient"}}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ExecRequestFromJson({{"code", "1"}, {"isolation", "bogus"}}).status()));
}

// "resident" is kResident's name; "tool", its old name, is still read (JSON and flags).
TEST(ExecFieldsTest, ToolIsStillReadAsResident) {
  EXPECT_EQ(IsolationName(Isolation::kResident), "resident");
  absl::StatusOr<ExecRequest> json_tool =
      ExecRequestFromJson({{"code", "1"}, {"isolation", "tool"}});
  ASSERT_TRUE(json_tool.ok()) << json_tool.status();
  EXPECT_EQ(json_tool->isolation, Isolation::kResident);
  EXPECT_EQ(FromFlags(ExecFields(), {{"--isolation", "tool"}}).isolation, Isolation::kResident);
  EXPECT_EQ(FromFlags(RegisterFields(), {{"--isolation", "tool"}}).options.isolation,
            Isolation::kResident);
  EXPECT_EQ(FromFlags(ExecFields(), {{"--isolation", "process"}}).isolation, Isolation::kProcess);
  EXPECT_EQ(FromFlags(ExecFields(), {{"--isolation", "fresh"}}).isolation, Isolation::kFresh);
}

// ---------------------------------------------------------------------------------
// register and call

TEST(RegisterFieldsTest, EveryFieldFromJsonAndFlags) {
  absl::StatusOr<RegisterRequest> request =
      RegisterRequestFromJson({{"op", "register"},
                               {"name", "wc"},
                               {"source", "def run(args): return 1"},
                               {"policy", {{"extends", "strict"}, {"name", "mine"}}},
                               {"isolation", "resident"},
                               {"timeout_ms", 700},
                               {"cpu_ms", 600},
                               {"memory_mb", 64}});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->options.limits.timeout_ms, 700);
  EXPECT_EQ(request->options.limits.cpu_ms, 600);
  EXPECT_EQ(request->options.limits.memory_mb, 64);
  EXPECT_EQ(request->name, "wc");
  EXPECT_EQ(request->source, "def run(args): return 1");
  ASSERT_TRUE(request->options.policy.has_value());
  EXPECT_EQ(request->options.policy->name, "mine");
  EXPECT_EQ(request->options.isolation, Isolation::kResident);

  RegisterRequest flags =
      FromFlags(RegisterFields(),
                {{"--policy", "balanced"}, {"--isolation", "resident"}, {"--timeout-ms", "900"}});
  ASSERT_TRUE(flags.options.policy.has_value());
  EXPECT_EQ(flags.options.policy->name, "balanced");
  EXPECT_EQ(flags.options.isolation, Isolation::kResident);
  EXPECT_EQ(flags.options.limits.timeout_ms, 900);
  EXPECT_EQ(FlagsOf(RegisterFields()),
            (std::set<std::string>{"--policy", "--isolation", "--timeout-ms", "--cpu-ms",
                                   "--memory-mb"}));
}

TEST(RegisterFieldsTest, ErrorsNameTheField) {
  auto error = [](const json& object) {
    return std::string(RegisterRequestFromJson(object).status().message());
  };
  EXPECT_EQ(error({{"source", "x"}}), "missing field 'name'");
  EXPECT_EQ(error({{"name", "t"}}), "missing field 'source'");
  EXPECT_EQ(error({{"name", 1}, {"source", "x"}}), "field 'name' must be a string");
  EXPECT_EQ(error({{"name", "t"}, {"source", "x"}, {"isolation", 7}}),
            "field 'isolation' must be \"fresh\", \"resident\" or \"process\"");
  EXPECT_EQ(error({{"name", "t"}, {"source", "x"}, {"isolation", "bogus"}}),
            "field 'isolation': unknown isolation 'bogus' (expected fresh, resident or process)");
  EXPECT_EQ(error({{"name", "t"}, {"source", "x"}, {"policy", true}}),
            "field 'policy' must be a name or an object");
  absl::StatusOr<RegisterRequest> defaults =
      RegisterRequestFromJson({{"name", "t"}, {"source", "x"}, {"isolation", nullptr}});
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->options.isolation, Isolation::kFresh);
  EXPECT_FALSE(defaults->options.policy.has_value());
}

TEST(CallFieldsTest, EveryFieldFromJsonAndFlags) {
  absl::StatusOr<CallRequest> request =
      CallRequestFromJson({{"op", "call"}, {"name", "wc"}, {"args", {{"text", "a b"}}}});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->name, "wc");
  EXPECT_EQ(request->args, json({{"text", "a b"}}));
  absl::StatusOr<CallRequest> no_args = CallRequestFromJson({{"name", "wc"}});
  ASSERT_TRUE(no_args.ok());
  EXPECT_EQ(no_args->args, json::object());
  absl::StatusOr<CallRequest> null_args = CallRequestFromJson({{"name", "wc"}, {"args", nullptr}});
  ASSERT_TRUE(null_args.ok());
  EXPECT_TRUE(null_args->args.is_null());

  EXPECT_EQ(FromFlags(CallFields(), {{"--args", "[1, 2]"}}).args, json({1, 2}));
  EXPECT_EQ(FlagsOf(CallFields()), (std::set<std::string>{"--args"}));
  EXPECT_THAT(FlagError(CallFields(), "--args", "{bad"), HasSubstr("--args is not valid JSON"));
  EXPECT_THAT(FlagError(CallFields(), "--args", R"({"n": 99999999999999999999})"),
              HasSubstr("--args: n: integer 99999999999999999999 does not fit in 64 bits"));
  EXPECT_EQ(CallRequestFromJson({{"args", {}}}).status().message(), "missing field 'name'");
  EXPECT_EQ(CallRequestFromJson({{"name", nullptr}}).status().message(),
            "field 'name' must be a string");
}

}  // namespace
}  // namespace pyhost::protocol
