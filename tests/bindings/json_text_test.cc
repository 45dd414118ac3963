#include "bindings/json_text.h"

#include <chrono>
#include <limits>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

std::string Nested(int levels, const std::string& inner = "") {
  return std::string(levels, '[') + inner + std::string(levels, ']');
}

TEST(JsonTextTest, ReadsWhatJsonParseReads) {
  for (const char* text : {R"({"a": [1, -2, 3.5, "x\u00e9", true, false, null], "b": {}})", "[]",
                           "\"\\ud83d\\ude00\"", "0", "-0", "1e3", "  {\"k\": 1}  "}) {
    absl::StatusOr<json> read = ParseJsonText(text);
    ASSERT_TRUE(read.ok()) << text << ": " << read.status();
    EXPECT_EQ(*read, json::parse(text)) << text;
  }
  for (const char* text : {"", "{", "[1,]", "{\"a\" 1}", "nul", "[1] x", "\"\xff\"", "1e400"}) {
    JsonText read = ReadJsonText(text);
    EXPECT_EQ(read.problem, JsonText::kSyntax) << text;
    EXPECT_THAT(std::string(read.status.message()), HasSubstr("not valid JSON")) << text;
    EXPECT_TRUE(read.value.is_discarded()) << text;
  }
  // The parser's message quotes what it read last: bounded.
  JsonText long_token = ReadJsonText("[\"" + std::string(100000, 'x'));
  EXPECT_EQ(long_token.problem, JsonText::kSyntax);
  EXPECT_LT(long_token.status.message().size(), 400u);
}

TEST(JsonTextTest, NestingIsBoundedBeforeItIsBuilt) {
  EXPECT_TRUE(ParseJsonText(Nested(kMaxValueDepth)).ok());
  JsonText deeper = ReadJsonText(Nested(kMaxValueDepth + 1));
  EXPECT_EQ(deeper.problem, JsonText::kTooDeep);
  EXPECT_THAT(std::string(deeper.status.message()), HasSubstr("nested deeper than 256 levels"));
  // 70,000 levels in a 140 KB text overflowed the stack (copy, dump, destructor).
  JsonText huge = ReadJsonText("{\"id\": " + Nested(70000) + "}", 3);
  EXPECT_EQ(huge.problem, JsonText::kTooDeep);
  EXPECT_THAT(std::string(huge.status.message()),
              HasSubstr("nested deeper than 3 levels of arrays and objects (at id[0][0])"));
  EXPECT_TRUE(huge.value.is_discarded());
  // Brackets inside strings are text, whatever their number.
  absl::StatusOr<json> in_string = ParseJsonText("[\"" + Nested(70000) + "\\\"[\"]", 1);
  ASSERT_TRUE(in_string.ok()) << in_string.status();
  EXPECT_EQ((*in_string)[0].get<std::string>().size(), 140002u);
  // A long path is summarized in the message.
  JsonText long_path = ReadJsonText(Nested(300), 256);
  EXPECT_LT(long_path.status.message().size(), 200u);
}

TEST(JsonTextTest, IntegersStayExactOrAreRefused) {
  absl::StatusOr<json> edges =
      ParseJsonText("[-9223372036854775808, 18446744073709551615, 1.5e300]");
  ASSERT_TRUE(edges.ok()) << edges.status();
  EXPECT_EQ((*edges)[0].get<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_TRUE((*edges)[1].is_number_unsigned());
  EXPECT_EQ((*edges)[1].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE((*edges)[2].is_number_float());

  JsonText read = ReadJsonText(
      R"({"id": 7, "args": {"xs": [1, 18446744073709551616]}, "n": -9223372036854775809})");
  EXPECT_EQ(read.problem, JsonText::kUnfitInteger);
  EXPECT_EQ(
      read.status.message(),
      "args.xs[1]: integer 18446744073709551616 does not fit in 64 bits (integers must lie in "
      "[-2^63, 2^64))");
  EXPECT_EQ(read.value["id"], 7);  // the rest is kept, nulls where integers did not fit
  EXPECT_EQ(read.value["args"]["xs"], json({1, nullptr}));
  EXPECT_TRUE(read.value["n"].is_null());
  EXPECT_EQ(read.unfit_top_keys.size(), 2u);
  EXPECT_EQ(read.unfit_top_keys["n"], "-9223372036854775809");
  EXPECT_FALSE(ParseJsonText("[1, 99999999999999999999]").ok());

  // A literal of 100,000 digits (past a double's range: the parser stops) is quoted bounded.
  JsonText long_literal = ReadJsonText(std::string(100000, '9'));
  EXPECT_EQ(long_literal.problem, JsonText::kUnfitInteger);
  EXPECT_TRUE(long_literal.value.is_discarded());
  EXPECT_LT(long_literal.status.message().size(), 200u);
  EXPECT_THAT(std::string(long_literal.status.message()), HasSubstr("(100000 bytes)"));
}

TEST(JsonTextTest, CostIsLinear) {
  std::string wide = "[";
  for (int i = 0; i < 200000; ++i) wide += "{\"key\": [1, 2.5, \"x\"]},";
  wide += "0]";
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<json> read = ParseJsonText(wide);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 200001u);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
}

}  // namespace
}  // namespace pyhost
