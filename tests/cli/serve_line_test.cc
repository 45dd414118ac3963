#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bindings/json_convert.h"
#include "protocol/request_codec.h"
#include "protocol/requests.h"

namespace pyhost::protocol {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

TEST(ServeLineTest, ARequestObjectWithItsId) {
  ServeLine line = ParseServeLine(R"({"id": "a", "op": "exec", "code": "1"})", 1);
  ASSERT_TRUE(line.status.ok()) << line.status;
  EXPECT_EQ(line.id, "a");
  EXPECT_EQ(line.request["op"], "exec");
  EXPECT_TRUE(ParseServeLine(R"({"op": "exec"})", 1).id.is_null());
}

TEST(ServeLineTest, WhatIsNotAnObjectIsNamedByItsLine) {
  for (const char* text : {"not json", "[1, 2]", "3", "{\"id\": 1", "\"id\""}) {
    ServeLine line = ParseServeLine(text, 4);
    EXPECT_EQ(line.status.message(), "line 4 is not a JSON object") << text;
    EXPECT_TRUE(line.id.is_null()) << text;
  }
}

TEST(ServeLineTest, NestingDeeperThanValuesMayIsRefusedWithNullId) {
  std::string deep_id = std::string(70000, '[') + std::string(70000, ']');
  ServeLine line = ParseServeLine("{\"id\": " + deep_id + ", \"op\": \"exec\"}", 2);
  EXPECT_THAT(std::string(line.status.message()),
              HasSubstr("line 2 is nested deeper than 257 levels of arrays and objects"));
  EXPECT_TRUE(line.id.is_null());
  // args may nest as deep as a value may (the request object is one level more).
  std::string args = std::string(kMaxValueDepth, '[') + std::string(kMaxValueDepth, ']');
  ServeLine limit = ParseServeLine("{\"id\": 1, \"args\": " + args + "}", 3);
  EXPECT_TRUE(limit.status.ok()) << limit.status;
  ServeLine over = ParseServeLine("{\"id\": 1, \"args\": [" + args + "]}", 3);
  EXPECT_FALSE(over.status.ok());
}

TEST(ServeLineTest, AnIdPast64BitsIsNeverChangedButRefusedWithNullId) {
  ServeLine line = ParseServeLine(R"({"id": 123456789012345678901234567890, "op": "exec"})", 5);
  EXPECT_TRUE(line.id.is_null());
  EXPECT_THAT(std::string(line.status.message()),
              HasSubstr("line 5: field 'id' holds the integer 123456789012345678901234567890"));
  EXPECT_THAT(std::string(line.status.message()), HasSubstr("this answer's id is null"));
  ServeLine nested = ParseServeLine(R"({"id": [1, -99999999999999999999], "op": "exec"})", 6);
  EXPECT_TRUE(nested.id.is_null());
  EXPECT_THAT(std::string(nested.status.message()), HasSubstr("-99999999999999999999"));
  // At the edges of 64 bits, exact.
  ServeLine max = ParseServeLine(R"({"id": 18446744073709551615})", 7);
  ASSERT_TRUE(max.status.ok());
  EXPECT_EQ(max.id.dump(), "18446744073709551615");
  EXPECT_EQ(ParseServeLine(R"({"id": -9223372036854775808})", 7).id.dump(), "-9223372036854775808");
}

TEST(ServeLineTest, AnIntegerPast64BitsElsewhereIsRefusedWithTheRequestsId) {
  ServeLine line = ParseServeLine(
      R"({"id": 9, "op": "exec", "args": {"n": 18446744073709551616}, "code": "1"})", 8);
  EXPECT_EQ(line.id, 9);
  EXPECT_EQ(line.status.message(),
            "line 8: args.n: integer 18446744073709551616 does not fit in 64 bits (integers must "
            "lie in [-2^63, 2^64))");
  ServeLine limit = ParseServeLine(
      R"({"id": 10, "policy": {"limits": {"timeout_ms": 1e2, "cpu_ms": 99999999999999999999}}})",
      9);
  EXPECT_EQ(limit.id, 10);
  EXPECT_THAT(std::string(limit.status.message()), HasSubstr("policy.limits.cpu_ms: integer"));
  // Past a double's range too, the parser stops there: nothing after it is known.
  ServeLine huge = ParseServeLine("{\"args\": [" + std::string(400, '9') + "], \"id\": 1}", 10);
  EXPECT_TRUE(huge.id.is_null());
  EXPECT_THAT(std::string(huge.status.message()), HasSubstr("args[0]: integer 9999"));
  EXPECT_THAT(std::string(huge.status.message()), HasSubstr("so this answer's id is null"));
  ServeLine huge_id = ParseServeLine("{\"id\": " + std::string(400, '9') + "}", 11);
  EXPECT_TRUE(huge_id.id.is_null());
  EXPECT_THAT(std::string(huge_id.status.message()),
              HasSubstr("field 'id' holds the integer 9999"));
}

// Fields that must be positive integers: one past what int64 holds is refused, named.
TEST(ServeLineTest, LimitsPastInt64AreRefusedByName) {
  ServeLine line = ParseServeLine(
      R"({"id": 1, "op": "exec", "code": "1", "max_output_bytes": 9223372036854775808})", 1);
  ASSERT_TRUE(line.status.ok());
  absl::StatusOr<ExecRequest> request = ExecRequestFromJson(line.request);
  ASSERT_FALSE(request.ok());
  EXPECT_THAT(
      std::string(request.status().message()),
      HasSubstr("field 'max_output_bytes' must be a positive integer up to 9223372036854775807"));
}

TEST(ParseJsonArgumentTest, BoundsAndExactIntegers) {
  EXPECT_THAT(std::string(ParseJsonArgument("--args", "{bad").status().message()),
              HasSubstr("--args is not valid JSON"));
  EXPECT_THAT(std::string(ParseJsonArgument("--args", std::string(300, '[') + std::string(300, ']'))
                              .status()
                              .message()),
              HasSubstr("--args: nested deeper than 256 levels"));
  EXPECT_THAT(
      std::string(ParseJsonArgument("--args", R"({"n": 99999999999999999999})").status().message()),
      HasSubstr("--args: n: integer 99999999999999999999 does not fit in 64 bits"));
}

}  // namespace
}  // namespace pyhost::protocol
