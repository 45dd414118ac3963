// Converting what the code hands back (a snippet's `result`, a tool's return value)
// must never trust objects that run code: a key's __str__, a subclass's __iter__ or a
// finalizer run by the garbage collector mid-conversion used to change or free what
// was being walked (SIGSEGV). Run through the public Host API, as the hostile suite.
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/security/shared_host.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

class ConversionTest : public SharedHostTest {};

// The reproducer of issue 7, class 1.
TEST_F(ConversionTest, KeyWhoseStrEmptiesTheResult) {
  ExecResult r =
      Run("L=[]\nclass K(int):\n def __str__(s): L.clear(); return 'k'\n"
          "L+=[{K(1):1},'a','b']\nresult=L\n");
  ASSERT_FALSE(r.error.has_value()) << r.ToJson().dump();
  EXPECT_EQ(r.result, json::parse(R"([{"1": 1}, "a", "b"])"));  // json.dumps' answer
}

constexpr char kHostileValue[] = R"PY(
class K(int):
    def __str__(self):
        raise RuntimeError('__str__ ran')
    __repr__ = __str__
class L(list):
    def __iter__(self):
        raise RuntimeError('__iter__ ran')
    def __len__(self):
        raise RuntimeError('__len__ ran')
class D(dict):
    def items(self):
        raise RuntimeError('items ran')
    def keys(self):
        raise RuntimeError('keys ran')
value = D({K(3): L([K(1), 'x']), 'k': (L(), 2.5)})
)PY";

TEST_F(ConversionTest, ToolReturnValueIsReadByContent) {
  ASSERT_TRUE(host_
                  ->RegisterTool("hostile_return",
                                 std::string(kHostileValue) + "def run(args):\n    return value\n")
                  .ok());
  absl::StatusOr<ToolCallResult> call = host_->CallTool("hostile_return", json::object());
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->envelope,
            json::parse(R"({"ok": true, "data": {"3": [1, "x"], "k": [[], 2.5]}})"));
  ASSERT_TRUE(host_->UnregisterTool("hostile_return").ok());
}

// Whether a returned dict is the envelope is decided on what it converted to: a key
// whose __eq__ claims to be "ok" passed a dict without "ok" through as the envelope.
TEST_F(ConversionTest, EnvelopeIsDecidedOnTheConvertedValue) {
  ASSERT_TRUE(host_
                  ->RegisterTool("fake_ok", R"PY(
class K(str):
    def __hash__(self):
        return hash('ok')
    def __eq__(self, other):
        return True
def run(args):
    return {K('zz'): 1}
)PY")
                  .ok());
  absl::StatusOr<ToolCallResult> call = host_->CallTool("fake_ok", json::object());
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->envelope, json::parse(R"({"ok": true, "data": {"zz": 1}})"));
  ASSERT_TRUE(host_->UnregisterTool("fake_ok").ok());
}

TEST_F(ConversionTest, ErrorMessagesDescribeWithoutRunningCode) {
  ExecResult r = Run(std::string(kHostileValue) + "result = [value, {K(1)}]\n");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "ResultNotSerializable");
  EXPECT_THAT(r.error->message,
              HasSubstr("result[1]: not JSON-representable (type 'set', value {1})"));
}

// A finalizer that drops `result` (the host read it from the globals, borrowed) while
// the collector runs during the conversion; the dict's items outnumber the free lists,
// so the conversion's allocations start collections.
TEST_F(ConversionTest, FinalizerDroppingTheResultMidConversion) {
  ExecResult r = Run(R"PY(
import gc
go = [False]
class Bomb:
    def __del__(self):
        if go[0]:
            globals().pop('result', None)
            junk.append([{'q': i} for i in range(200)])
        arm()
def arm():
    b = Bomb()
    b.cycle = b
junk = []
result = {str(i): [i] for i in range(5000)}
arm()
gc.set_threshold(1)
go[0] = True
)PY",
                     "yolo");
  ASSERT_FALSE(r.error.has_value()) << r.ToJson().dump().substr(0, 2000);
  ASSERT_TRUE(r.result.is_object()) << r.result.dump().substr(0, 200);
  EXPECT_EQ(r.result.size(), 5000u);
  EXPECT_EQ(r.result["4999"], json({4999}));
}

}  // namespace
}  // namespace pyhost
