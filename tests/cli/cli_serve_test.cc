// End-to-end tests of `pyhost serve`: JSON requests on stdin (register, call, exec),
// one answer line per request on stdout; bad requests, concurrency, read-ahead, the
// protocol descriptors, and how the server stops.

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/cli/cli_harness.h"

namespace pyhost::cli_test {
namespace {

// --- requests and answers ------------------------------------------------------------

TEST_F(ServeTest, RegisterThenCallAndExec) {
  std::vector<json> requests = {
      {{"id", 1},
       {"op", "register"},
       {"name", "wc"},
       {"source", "def run(args):\n    print('counting')\n    return len(args['text'].split())\n"}},
      {{"id", 2}, {"op", "call"}, {"name", "wc"}, {"args", {{"text", "a b c"}}}},
      {{"id", "three"},
       {"op", "exec"},
       {"code", "print('hi')\nresult = sum(args['xs'])"},
       {"args", {{"xs", {1, 2, 3}}}}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(CountLines(run.out), 3u) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.Describe();

  EXPECT_EQ(answers["1"], json::parse(R"({"id": 1, "ok": true, "name": "wc"})"));

  json call = answers["2"];
  EXPECT_EQ(call["ok"], true) << call.dump();
  EXPECT_EQ(call["data"], 3) << call.dump();
  EXPECT_EQ(call["stdout"], "counting\n") << call.dump();
  EXPECT_EQ(call["stats"]["isolation"], "fresh") << call.dump();

  json exec = answers["\"three\""];
  EXPECT_EQ(exec["ok"], true) << exec.dump();
  EXPECT_EQ(exec["result"], 6) << exec.dump();
  EXPECT_EQ(exec["stdout"], "hi\n") << exec.dump();
  EXPECT_TRUE(exec["error"].is_null()) << exec.dump();
  EXPECT_EQ(exec["stats"]["isolation"], "fresh") << exec.dump();
}

TEST_F(ServeTest, EmptyInputExitsZero) {
  Outcome run = RunPyhost({"serve"});
  EXPECT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
}

TEST_F(ServeTest, BadRequestsGetErrorsAndTheServerGoesOn) {
  std::string input;
  input += "this is not json\n";  // line 1
  input += R"({"id": 1, "op": "frobnicate"})"
           "\n";  // line 2
  input += R"({"id": 2, "op": "exec"})"
           "\n";  // line 3
  input += R"({"id": 3, "op": "call"})"
           "\n";  // line 4
  input += R"({"id": 4, "op": "call", "name": "nope"})"
           "\n";  // line 5
  input += R"({"id": 5, "op": "register", "name": "bad", "source": "def run(args:\n  pass"})"
           "\n";
  input += R"({"id": 6, "op": "register", "source": "def run(args): return 1"})"
           "\n";
  input += R"({"id": 7})"
           "\n";        // line 8
  input += "[1, 2]\n";  // line 9
  input += "\n   \n";   // blank: no answer
  input += R"({"id": 8, "op": "exec", "code": 42})"
           "\n";
  input += R"({"id": 9, "op": "exec", "code": "result = args['k']", "args": {}})"
           "\n";
  input += R"({"id": 10, "op": "exec", "code": "result = 'still serving'"})"
           "\n";
  input += R"({"id": 11, "op": "call", "name": "bad"})"
           "\n";
  Outcome run = RunPyhost({"serve"}, input);
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(CountLines(run.out), 13u) << run.Describe();  // blank lines get no answer

  // Answers to lines that are not objects carry id null: match them by message.
  std::vector<std::string> null_id_messages;
  std::map<std::string, json> answers;
  std::istringstream lines(run.out);
  std::string line;
  while (std::getline(lines, line)) {
    json answer = json::parse(line, nullptr, false);
    ASSERT_TRUE(answer.is_object()) << line;
    if (answer["id"].is_null()) {
      EXPECT_EQ(answer["ok"], false) << line;
      EXPECT_EQ(answer["error"]["type"], "BadRequest") << line;
      null_id_messages.push_back(answer["error"]["message"]);
    } else {
      answers[answer["id"].dump()] = answer;
    }
  }
  EXPECT_THAT(null_id_messages, ::testing::UnorderedElementsAre("line 1 is not a JSON object",
                                                                "line 9 is not a JSON object"));
  auto expect_error = [&](const std::string& id, const std::string& type,
                          const std::string& message_has) {
    SCOPED_TRACE("id " + id);
    ASSERT_EQ(answers.count(id), 1u) << run.Describe();
    const json& answer = answers[id];
    EXPECT_EQ(answer["ok"], false) << answer.dump();
    ASSERT_TRUE(answer["error"].is_object()) << answer.dump();
    EXPECT_EQ(answer["error"]["type"], type) << answer.dump();
    EXPECT_THAT(answer["error"]["message"].get<std::string>(), HasSubstr(message_has));
  };
  expect_error("1", "BadRequest", "unknown op \"frobnicate\"");
  expect_error("2", "BadRequest", "missing field 'code'");
  expect_error("3", "BadRequest", "missing field 'name'");
  expect_error("4", "NotFound", "no tool named 'nope'");
  expect_error("5", "ToolLoadError", "SyntaxError");
  expect_error("6", "BadRequest", "missing field 'name'");
  expect_error("7", "BadRequest", "missing field 'op'");
  expect_error("8", "BadRequest", "field 'code' must be a string");
  expect_error("9", "KeyError", "k");
  EXPECT_THAT(answers["9"]["error"]["hint"].get<std::string>(), HasSubstr("args"));
  EXPECT_EQ(answers["9"]["error"]["line"], 1);
  expect_error("11", "NotFound", "no tool named 'bad'");  // the failed register left nothing

  ASSERT_EQ(answers.count("10"), 1u);
  EXPECT_EQ(answers["10"]["ok"], true) << answers["10"].dump();
  EXPECT_EQ(answers["10"]["result"], "still serving");
}

TEST_F(ServeTest, ExecFailuresAreAnswers) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "import sys\nsys.exit(3)"}},
      {{"id", 2}, {"op", "exec"}, {"code", "raise KeyboardInterrupt"}},
      {{"id", 3}, {"op", "exec"}, {"code", "result = {1, 2}"}},
      {{"id", 4}, {"op", "exec"}, {"code", "x = (\n"}},
      {{"id", 5}, {"op", "exec"}, {"code", "result = 'alive'"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 5u) << run.Describe();
  EXPECT_EQ(answers["1"]["error"]["type"], "SystemExit");
  EXPECT_EQ(answers["2"]["error"]["type"], "KeyboardInterrupt");
  EXPECT_EQ(answers["3"]["error"]["type"], "ResultNotSerializable");
  EXPECT_EQ(answers["4"]["error"]["type"], "SyntaxError");
  EXPECT_EQ(answers["4"]["error"]["line"], 1);
  for (const char* id : {"1", "2", "3", "4"}) EXPECT_EQ(answers[id]["ok"], false) << id;
  EXPECT_EQ(answers["5"]["ok"], true);
  EXPECT_EQ(answers["5"]["result"], "alive");
}

TEST_F(ServeTest, RequestWithoutIdIsAnsweredWithNullId) {
  Outcome run = RunPyhost({"serve"}, R"({"op": "exec", "code": "result = 5"})"
                                     "\n");
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_TRUE(answer.contains("id") && answer["id"].is_null()) << answer.dump();
  EXPECT_EQ(answer["result"], 5);
}

// A line of 70,000 nested arrays (140 KB) overflowed the stack while it was parsed,
// copied, dumped or converted: depth is bounded where the text enters.
TEST_F(ServeTest, DeeplyNestedLinesAreRefusedAndTheServerGoesOn) {
  std::string deep = std::string(70000, '[') + std::string(70000, ']');
  std::string limit = std::string(256, '[') + std::string(256, ']');  // values may nest 256
  std::string input =
      "{\"id\": " + deep + ", \"op\": \"exec\", \"code\": \"1\"}\n" +
      "{\"id\": 2, \"op\": \"exec\", \"code\": \"1\", \"args\": {\"x\": " + deep + "}}\n" +
      "{\"id\": 3, \"op\": \"exec\", \"code\": \"result = args\", \"args\": " + limit + "}\n" +
      R"({"id": 4, "op": "exec", "code": "result = 'alive'"})"
      "\n";
  Outcome run = RunPyhost({"serve"}, input);
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  ASSERT_EQ(CountLines(run.out), 4u) << run.Describe();
  std::istringstream lines(run.out);
  std::string line;
  int refused = 0;
  std::map<std::string, json> answers;
  while (std::getline(lines, line)) {
    json answer = json::parse(line);
    if (!answer["id"].is_null()) {
      answers[answer["id"].dump()] = answer;
      continue;
    }
    ++refused;
    EXPECT_EQ(answer["error"]["type"], "BadRequest");
    EXPECT_THAT(answer["error"]["message"].get<std::string>(),
                HasSubstr("is nested deeper than 257 levels of arrays and objects"));
  }
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(answers["3"]["result"], json::parse(limit)) << answers["3"].dump().substr(0, 500);
  EXPECT_EQ(answers["4"]["result"], "alive");
}

// nlohmann::json keeps an integer literal past 64 bits as a double: ids stopped
// matching and args lost precision. Exact, or refused with a clear error; the answer's
// id is the request's own or, if that cannot be kept, null (and the message says so).
TEST_F(ServeTest, IntegersPast64BitsAreKeptExactOrRefusedNeverRounded) {
  std::string input =
      R"({"id": 123456789012345678901234567890, "op": "exec", "code": "result = 1"})"
      "\n"
      R"({"id": 18446744073709551615, "op": "exec", "code": "result = args", "args": {"n": 18446744073709551615}})"
      "\n"
      R"({"id": -9223372036854775808, "op": "exec", "code": "result = args['n'] - 1", "args": {"n": -9223372036854775807}})"
      "\n"
      R"({"id": 4, "op": "exec", "code": "result = 1", "args": {"n": 18446744073709551616}})"
      "\n"
      R"({"id": 5, "op": "call", "name": "x", "args": [99999999999999999999999]})"
      "\n"
      R"({"id": 6, "op": "exec", "code": "result = 1", "max_output_bytes": 18446744073709551616})"
      "\n"
      R"({"id": 7, "op": "exec", "code": "result = 1", "policy": {"extends": "strict", "limits": {"timeout_ms": 99999999999999999999}}})"
      "\n"
      R"({"id": 8, "op": "exec", "code": "result = [2**64 - 1, -2**63, 2**64]"})"
      "\n";
  Outcome run = RunPyhost({"serve"}, input);
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 8u) << run.Describe();
  EXPECT_THAT(answers["null"]["error"]["message"].get<std::string>(),
              HasSubstr("field 'id' holds the integer 123456789012345678901234567890"));
  EXPECT_THAT(answers["null"]["error"]["message"].get<std::string>(), HasSubstr("id is null"));
  EXPECT_EQ(answers["18446744073709551615"]["result"].dump(), R"({"n":18446744073709551615})");
  EXPECT_EQ(answers["-9223372036854775808"]["result"].dump(), "-9223372036854775808");
  for (const auto& [id, field] : std::map<std::string, std::string>{
           {"4", "args.n: integer 18446744073709551616"},
           {"5", "args[0]: integer 99999999999999999999999"},
           {"6", "max_output_bytes: integer 18446744073709551616"},
           {"7", "policy.limits.timeout_ms: integer 99999999999999999999"}}) {
    EXPECT_EQ(answers[id]["error"]["type"], "BadRequest") << answers[id].dump();
    EXPECT_THAT(answers[id]["error"]["message"].get<std::string>(),
                HasSubstr(field + " does not fit in 64 bits"));
  }
  EXPECT_EQ(answers["8"]["error"]["type"], "ResultNotSerializable") << answers["8"].dump();
  EXPECT_THAT(answers["8"]["error"]["message"].get<std::string>(),
              HasSubstr("result[2]: int does not fit in 64 bits"));
}

TEST_F(ServeTest, ProcessIsolationRunsInAChildProcess) {
  Outcome run =
      RunPyhost({"serve"}, Lines({{{"id", 3},
                                   {"op", "exec"},
                                   {"code", "import os; print('ran'); result = os.getpid()"},
                                   {"isolation", "process"}}}));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 1u) << run.Describe();
  json answer = answers["3"];
  EXPECT_EQ(answer["ok"], true) << answer.dump();
  EXPECT_EQ(answer["stdout"], "ran\n") << answer.dump();
  EXPECT_EQ(answer["stats"]["isolation"], "process") << answer.dump();
  EXPECT_EQ(answer["result"], answer["stats"]["process"]["pid"]) << answer.dump();
}

// The limit fields of a request, and a policy's ceilings, as the C++ API takes them.
TEST_F(ServeTest, LimitFieldsAreInForceAndAboveACeilingAreRefused) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "result = 1"}, {"timeout_ms", 900}, {"memory_mb", 64}},
      {{"id", 2}, {"op", "exec"}, {"code", "while True: pass"}, {"timeout_ms", 300}},
      {{"id", 3}, {"op", "exec"}, {"code", "while True: pass"}, {"cpu_ms", 300}},
      {{"id", 4}, {"op", "exec"}, {"code", "x = bytearray(2**31)"}, {"memory_mb", 64}},
      {{"id", 5},
       {"op", "exec"},
       {"code", "result = 1"},
       {"policy", {{"extends", "strict"}, {"limits", {{"timeout_ms", 500}}}}},
       {"timeout_ms", 600}},
      {{"id", 6},
       {"op", "exec"},
       {"code", "result = 1"},
       {"policy", {{"extends", "strict"}, {"limits", {{"timeout_ms", 500}}}}}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 6u) << run.Describe();
  EXPECT_EQ(answers["1"]["result"], 1) << answers["1"].dump();
  EXPECT_EQ(answers["1"]["stats"]["limits"],
            (json{{"timeout_ms", 900}, {"cpu_ms", 900}, {"memory_mb", 64}}));
  EXPECT_EQ(answers["2"]["error"]["type"], "Timeout") << answers["2"].dump();
  EXPECT_EQ(answers["2"]["stats"]["limit_hit"], "timeout_ms") << answers["2"].dump();
  EXPECT_EQ(answers["3"]["error"]["type"], "CpuLimitExceeded") << answers["3"].dump();
  EXPECT_EQ(answers["4"]["error"]["type"], "MemoryLimitExceeded") << answers["4"].dump();
  EXPECT_EQ(answers["5"]["error"]["type"], "BadRequest") << answers["5"].dump();
  EXPECT_THAT(answers["5"]["error"]["message"].get<std::string>(),
              HasSubstr("timeout_ms 600 is above policy"));
  EXPECT_EQ(answers["6"]["stats"]["limits"]["timeout_ms"], 500) << answers["6"].dump();
}

// A request looping in Python does not hold up the others (fair GIL sharing): they are
// answered while it runs, and it ends at its deadline.
TEST_F(ServeTest, ALoopingRequestBesideNormalOnes) {
  std::vector<json> requests = {
      {{"id", "loop"}, {"op", "exec"}, {"code", "while True: pass"}, {"timeout_ms", 6000}}};
  for (int i = 0; i < 10; ++i) {  // well within the loop's 6 s, even under ASan
    requests.push_back({{"id", i}, {"op", "exec"}, {"code", absl::StrCat("result = ", i)}});
  }
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 11u) << run.Describe();
  EXPECT_EQ(answers["\"loop\""]["error"]["type"], "Timeout") << run.Describe();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(answers[std::to_string(i)]["result"], i);
  // The loop's answer is the last line: the others did not wait for it.
  std::string last = run.out.substr(run.out.rfind('\n', run.out.size() - 2) + 1);
  EXPECT_THAT(last, HasSubstr("\"loop\"")) << run.Describe();
}

TEST_F(ServeTest, PolicyAsAnObject) {
  std::vector<json> requests = {
      {{"id", 1},
       {"op", "exec"},
       {"code", "import csv\nresult = 1"},
       {"policy", {{"name", "tiny"}, {"imports", {{"allow", {"json"}}}}}}},
      {{"id", 2},
       {"op", "exec"},
       {"code", "import json\nresult = 2"},
       {"policy", {{"name", "tiny"}, {"imports", {{"allow", {"json"}}}}}}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  EXPECT_EQ(answers["1"]["error"]["type"], "ImportError") << answers["1"].dump();
  EXPECT_THAT(answers["1"]["error"]["message"].get<std::string>(), HasSubstr("policy 'tiny'"));
  EXPECT_EQ(answers["2"]["result"], 2) << answers["2"].dump();
}

TEST_F(ServeTest, ExecFieldsAreChecked) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "1"}, {"timeout_ms", -5}},
      {{"id", 2}, {"op", "exec"}, {"code", "1"}, {"isolation", "bogus"}},
      {{"id", 3}, {"op", "exec"}, {"code", "print('x' * 50)"}, {"max_output_bytes", 8}},
      {{"id", 4}, {"op", "exec"}, {"code", "result = 4"}, {"isolation", "tool"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 4u) << run.Describe();
  EXPECT_EQ(answers["1"]["error"]["type"], "BadRequest");
  EXPECT_THAT(answers["1"]["error"]["message"].get<std::string>(), HasSubstr("timeout_ms"));
  EXPECT_EQ(answers["2"]["error"]["type"], "BadRequest");
  EXPECT_EQ(answers["3"]["ok"], true);
  EXPECT_EQ(answers["3"]["stdout_truncated"], true);
  EXPECT_LE(answers["3"]["stdout"].get<std::string>().size(), 8u);
  EXPECT_EQ(answers["4"]["result"], 4);
  EXPECT_EQ(answers["4"]["stats"]["isolation"], "resident");
}

// --- concurrency and the protocol stream ---------------------------------------------

TEST_F(ServeTest, FiftyConcurrentExecs) {
  std::vector<json> requests;
  for (int n = 0; n < 50; ++n) {
    requests.push_back({{"id", n},
                        {"op", "exec"},
                        {"code",
                         "import time\n"
                         "print('start', args['n'])\n"
                         "time.sleep(0.01)\n"
                         "print('end', args['n'])\n"
                         "result = {'n': args['n'], 'square': args['n'] ** 2}\n"},
                        {"args", {{"n", n}}}});
  }
  Outcome run = RunPyhost({"serve", "--workers", "8"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(CountLines(run.out), 50u);
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 50u) << run.Describe();
  for (int n = 0; n < 50; ++n) {
    const json& answer = answers[std::to_string(n)];
    SCOPED_TRACE(answer.dump());
    EXPECT_EQ(answer["ok"], true);
    EXPECT_EQ(answer["result"], json({{"n", n}, {"square", n * n}}));
    // Each answer holds its own request's output, none of its neighbours'.
    EXPECT_EQ(answer["stdout"], "start " + std::to_string(n) + "\nend " + std::to_string(n) + "\n");
  }
}

TEST_F(ServeTest, ConcurrentCallsOfAResidentTool) {
  std::vector<json> requests = {{{"id", "reg"},
                                 {"op", "register"},
                                 {"name", "echo"},
                                 {"isolation", "tool"},
                                 {"source",
                                  "calls = []\n"
                                  "def run(args):\n"
                                  "    calls.append(args['n'])\n"
                                  "    print('n =', args['n'])\n"
                                  "    return {'n': args['n'], 'calls_so_far': len(calls)}\n"}}};
  for (int n = 0; n < 20; ++n) {
    requests.push_back({{"id", n}, {"op", "call"}, {"name", "echo"}, {"args", {{"n", n}}}});
  }
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 21u) << run.Describe();
  EXPECT_EQ(answers["\"reg\""]["ok"], true);
  std::set<int> counts;
  for (int n = 0; n < 20; ++n) {
    const json& answer = answers[std::to_string(n)];
    SCOPED_TRACE(answer.dump());
    EXPECT_EQ(answer["ok"], true);
    EXPECT_EQ(answer["data"]["n"], n);
    EXPECT_EQ(answer["stdout"], "n = " + std::to_string(n) + "\n");
    EXPECT_EQ(answer["stats"]["isolation"], "resident");
    counts.insert(answer["data"]["calls_so_far"].get<int>());
  }
  // Module state persists in a resident tool and calls are serialized: 1..20, once each.
  EXPECT_EQ(counts.size(), 20u);
  EXPECT_EQ(*counts.begin(), 1);
  EXPECT_EQ(*counts.rbegin(), 20);
}

TEST_F(ServeTest, AnswersEverythingBeforeExitingAtEndOfInput) {
  std::vector<json> requests = {
      {{"id", "slow"}, {"op", "exec"}, {"code", "import time\ntime.sleep(0.5)\nresult = 'late'"}},
      {{"id", "fast"}, {"op", "exec"}, {"code", "result = 'early'"}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "2"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  EXPECT_EQ(answers["\"slow\""]["result"], "late");
  EXPECT_EQ(answers["\"fast\""]["result"], "early");
  // Answers come as requests complete, not in request order.
  json first = json::parse(run.out.substr(0, run.out.find('\n')), nullptr, false);
  EXPECT_EQ(first["id"], "fast") << run.Describe();
}

TEST_F(ServeTest, UserStdoutNeverCorruptsTheProtocol) {
  const std::string code =
      "import sys\n"
      "print('{\"id\": 1, \"ok\": false, \"error\": {\"type\": \"Fake\"}}')\n"
      "print('{\"id\": 999, \"ok\": true}')\n"
      "sys.stdout.write('{\"id\": ')\n"  // half a line, no newline
      "sys.stdout.flush()\n"
      "sys.stderr.write('{\"id\": 998}\\n')\n"
      "result = 'genuine'\n";
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", code}},
      {{"id", 2},
       {"op", "register"},
       {"name", "noisy"},
       {"source", "def run(args):\n    print('{\"id\": 2, \"ok\": false}')\n    return 'quiet'\n"}},
      {{"id", 3}, {"op", "call"}, {"name", "noisy"}},
      {{"id", 4}, {"op", "exec"}, {"code", "result = 4"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(CountLines(run.out), 4u) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 4u) << run.Describe();
  EXPECT_EQ(answers["1"]["ok"], true);
  EXPECT_EQ(answers["1"]["result"], "genuine");
  EXPECT_EQ(answers["1"]["stdout"],
            "{\"id\": 1, \"ok\": false, \"error\": {\"type\": \"Fake\"}}\n{\"id\": 999, \"ok\": "
            "true}\n{\"id\": ");
  EXPECT_EQ(answers["1"]["stderr"], "{\"id\": 998}\n");
  EXPECT_EQ(answers["2"]["ok"], true);
  EXPECT_EQ(answers["3"]["ok"], true);
  EXPECT_EQ(answers["3"]["data"], "quiet");
  EXPECT_EQ(answers["3"]["stdout"], "{\"id\": 2, \"ok\": false}\n");
  EXPECT_EQ(answers["4"]["result"], 4);
  EXPECT_THAT(run.err, ::testing::Not(HasSubstr("998")));
}

TEST_F(ServeTest, SnippetCannotReadRequestLines) {
  // The snippet's sys.stdin is not the request stream: it cannot swallow line 2. It is
  // at its end, as python3's with nothing to read: readline() gives "".
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "import sys\nresult = sys.stdin.readline()"}},
      {{"id", 2}, {"op", "exec"}, {"code", "result = 2"}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  EXPECT_EQ(answers["1"]["ok"], true) << run.Describe();
  EXPECT_EQ(answers["1"]["result"], "");
  EXPECT_EQ(answers["2"]["result"], 2);
}

TEST_F(ServeTest, ReRegisterReplacesTheTool) {
  std::vector<json> requests = {
      {{"id", 1},
       {"op", "register"},
       {"name", "v"},
       {"source", "def run(args):\n    return 'v1'\n"}},
      {{"id", 2},
       {"op", "register"},
       {"name", "v"},
       {"source", "def run(args):\n    return 'v2'\n"}},
      {{"id", 3}, {"op", "call"}, {"name", "v"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.Describe();
  EXPECT_EQ(answers["3"]["data"], "v2");
}

TEST_F(ServeTest, RegisterRejectsBadIsolation) {
  std::vector<json> requests = {
      {{"id", 1},
       {"op", "register"},
       {"name", "t"},
       {"source", "def run(args): return 1"},
       {"isolation", "bogus"}},
      {{"id", 2},
       {"op", "register"},
       {"name", "t"},
       {"source", "def run(args): return 1"},
       {"isolation", 7}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  for (const char* id : {"1", "2"}) {
    EXPECT_EQ(answers[id]["ok"], false) << id;
    EXPECT_EQ(answers[id]["error"]["type"], "BadRequest") << answers[id].dump();
  }
}

// A client must tell "not supported yet" from a host failure: register with process
// isolation is answered NotImplemented, as the same request to exec is.
TEST_F(ServeTest, RegisterProcessIsolationRunsEachCallInAChild) {
  std::vector<json> requests = {
      {{"id", 1},
       {"op", "register"},
       {"name", "t"},
       {"source", "def run(args): return 1"},
       {"isolation", "process"}},
  };
  requests.push_back({{"op", "call"}, {"name", "t"}, {"args", json::object()}});
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::vector<json> answers;
  for (absl::string_view line : absl::StrSplit(run.out, '\n', absl::SkipEmpty())) {
    answers.push_back(json::parse(line));
  }
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  EXPECT_EQ(answers[0]["ok"], true) << answers[0].dump();
  EXPECT_EQ(answers[1]["data"], 1) << answers[1].dump();
}

// Output written to file descriptor 1 directly (os.write, a subprocess, a C extension's
// printf) must not reach the protocol stream: here a snippet tries to forge an answer
// for its own id. The command keeps its protocol on a private descriptor.
TEST_F(ServeTest, FdLevelWriteCannotForgeAnswers) {
  std::vector<json> requests = {
      {{"id", 1},
       {"op", "exec"},
       {"code",
        "import os\nos.write(1, b'{\"id\": 1, \"ok\": false, \"forged\": true}\\n')\nresult = 1"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  ASSERT_EQ(CountLines(run.out), 1u) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_FALSE(answer.contains("forged")) << run.Describe();  // the genuine answer only
  EXPECT_EQ(answer["error"]["type"], "PermissionError") << run.Describe();
}

// A register waits for the requests read before it (serve.h): calls sent before a
// re-register of the same name run the old source.
TEST_F(ServeTest, CallsSentBeforeReRegisterRunTheOldSource) {
  std::vector<json> requests = {{{"id", "r1"},
                                 {"op", "register"},
                                 {"name", "v"},
                                 {"source", "def run(args):\n    return 'v1'\n"}}};
  for (int n = 0; n < 20; ++n) requests.push_back({{"id", n}, {"op", "call"}, {"name", "v"}});
  requests.push_back({{"id", "r2"},
                      {"op", "register"},
                      {"name", "v"},
                      {"source", "def run(args):\n    return 'v2'\n"}});
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 22u) << run.Describe();
  for (int n = 0; n < 20; ++n) EXPECT_EQ(answers[std::to_string(n)]["data"], "v1") << n;
}

// --- files a user names, prewarm, resident state (issue 7) ---------------------------

// In serve, a request's "policy" path is a file the client named: the same rules,
// as an answer (the server goes on).
TEST_F(ServeTest, PolicyPathsThatAreNotRegularFilesAreRefused) {
  std::string fifo = dir_.PathOf("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  std::vector<json> requests;
  int id = 0;
  for (const std::string& path : {std::string("/dev/zero"), fifo, std::string("/usr/")}) {
    requests.push_back({{"id", ++id}, {"op", "exec"}, {"code", "result = 1"}, {"policy", path}});
    requests.push_back({{"id", ++id},
                        {"op", "register"},
                        {"name", "t"},
                        {"policy", path},
                        {"source", "def run(args):\n    return 1\n"}});
  }
  requests.push_back({{"id", ++id}, {"op", "exec"}, {"code", "result = 'still here'"}});
  Outcome run = RunPyhost({"serve"}, Lines(requests), std::chrono::seconds(20));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), static_cast<size_t>(id)) << run.Describe();
  for (int n = 1; n < id; ++n) {
    const json& answer = answers[std::to_string(n)];
    EXPECT_EQ(answer["ok"], false) << answer.dump();
    EXPECT_THAT(answer["error"]["message"].get<std::string>(), HasSubstr("not a regular file"))
        << answer.dump();
  }
  EXPECT_EQ(answers[std::to_string(id)]["result"], "still here");
}

// What prewarming prints is not any request's output.
TEST_F(ServeTest, PrewarmOutputIsDiscarded) {
  std::vector<json> requests;
  for (int n = 0; n < 6; ++n)
    requests.push_back({{"id", n}, {"op", "exec"}, {"code", "result = 1"}});
  requests.push_back({{"id", "r"},
                      {"op", "register"},
                      {"name", "t"},
                      {"source", "def run(args):\n    return 1\n"}});
  requests.push_back({{"id", "c"}, {"op", "call"}, {"name", "t"}});
  Outcome run = RunPyhost({"serve", "--prewarm", "this,json", "--pool-size", "2"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), requests.size()) << run.Describe();
  for (const auto& [id, answer] : answers) {
    if (id == "\"r\"") continue;
    EXPECT_EQ(answer["stdout"], "") << id << ": " << answer.dump();
  }
  EXPECT_THAT(run.err, ::testing::Not(HasSubstr("Beautiful is better")));
}

// Globals a resident call assigns do not persist, whichever function of the tool
// assigns them: run itself, a decorated run (a closure), a helper, a closure's body.
// Module state mutated in place still persists.
TEST_F(ServeTest, ResidentCallsDoNotKeepGlobalsAnyFunctionAssigns) {
  const std::string tools[] = {
      // a decorated run: functools.wraps returns a closure around the real run
      "import functools\n"
      "count = 0\n"
      "def deco(f):\n"
      "    @functools.wraps(f)\n"
      "    def wrapper(args):\n"
      "        return f(args)\n"
      "    return wrapper\n"
      "@deco\n"
      "def run(args):\n"
      "    global count\n"
      "    count += 1\n"
      "    return count\n",
      // a helper function assigning a global
      "count = 0\n"
      "def bump():\n"
      "    global count\n"
      "    count += 1\n"
      "    return count\n"
      "def run(args):\n"
      "    return bump()\n",
      // run is a closure made by a factory, assigning a global and a new one
      "count = 0\n"
      "def make(step):\n"
      "    def run(args):\n"
      "        global count, added\n"
      "        count += step\n"
      "        added = globals().get('added', 0) + 1\n"
      "        return count * 10 + added\n"
      "    return run\n"
      "run = make(1)\n",
  };
  int id = 0;
  std::vector<json> requests;
  for (size_t t = 0; t < std::size(tools); ++t) {
    std::string name = "t" + std::to_string(t);
    requests.push_back({{"id", ++id},
                        {"op", "register"},
                        {"name", name},
                        {"source", tools[t]},
                        {"isolation", "tool"}});
    for (int call = 0; call < 3; ++call)
      requests.push_back({{"id", ++id}, {"op", "call"}, {"name", name}});
  }
  requests.push_back(
      {{"id", ++id},
       {"op", "register"},
       {"name", "state"},
       {"isolation", "tool"},
       {"source", "cache = []\ndef run(args):\n    cache.append(1)\n    return len(cache)\n"}});
  for (int call = 0; call < 3; ++call)
    requests.push_back({{"id", ++id}, {"op", "call"}, {"name", "state"}});
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), requests.size()) << run.Describe();
  const json expected[] = {1, 1, 11};
  for (size_t t = 0; t < std::size(tools); ++t) {
    for (int call = 0; call < 3; ++call) {
      const json& answer = answers[std::to_string(t * 4 + 2 + call)];
      EXPECT_EQ(answer["data"], expected[t])
          << "tool " << t << " call " << call << ": " << answer.dump();
    }
  }
  for (int call = 0; call < 3; ++call) {
    EXPECT_EQ(answers[std::to_string(id - 2 + call)]["data"], call + 1);  // persists
  }
}

// Resident snippets and resident tools: a replaced sys.stdout does not silence the
// executions and calls after it.
TEST_F(ServeTest, ReplacedStdoutDoesNotSilenceLaterResidentExecutions) {
  std::vector<json> requests = {
      {{"id", 1},
       {"op", "exec"},
       {"isolation", "tool"},
       {"code", "import sys\nsys.stdout = None\nsys.stderr = None"}},
      {{"id", 2},
       {"op", "exec"},
       {"isolation", "tool"},
       {"code", "import sys\nprint('hello')\nprint('e', file=sys.stderr)"}},
      {{"id", 3},
       {"op", "register"},
       {"name", "t"},
       {"isolation", "tool"},
       {"source",
        "import sys\ndef run(args):\n    print('call', args['n'])\n    sys.stdout = None\n    "
        "return 1\n"}},
      {{"id", 4}, {"op", "call"}, {"name", "t"}, {"args", {{"n", 1}}}},
      {{"id", 5}, {"op", "call"}, {"name", "t"}, {"args", {{"n", 2}}}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), requests.size()) << run.Describe();
  EXPECT_EQ(answers["2"]["stdout"], "hello\n") << answers["2"].dump();
  EXPECT_EQ(answers["2"]["stderr"], "e\n") << answers["2"].dump();
  EXPECT_EQ(answers["4"]["stdout"], "call 1\n") << answers["4"].dump();
  EXPECT_EQ(answers["5"]["stdout"], "call 2\n") << answers["5"].dump();
}

// --- serve's read-ahead (issue 7, item 13) -------------------------------------------

// Serve reads ahead of what it can answer only so far: with one slow request running
// and thousands of 100 KB requests sent, the client is held back by the pipe and the
// server's memory stays bounded; every request is still answered exactly once.
TEST_F(ServeTest, ReadAheadIsBoundedWhileASlowRequestRuns) {
  const std::string marker = dir_.PathOf("go");
  constexpr int kCalls = 3000;
  const std::string pad(100 * 1000, 'p');
  std::string input = Lines({
      {{"id", "r"},
       {"op", "register"},
       {"name", "size"},
       {"isolation", "tool"},
       {"source", "def run(args):\n    return len(args['pad'])\n"}},
      {{"id", "slow"},
       {"op", "exec"},
       {"code", "import os, time\nwhile not os.path.exists(" + json(marker).dump() +
                    "):\n    time.sleep(0.01)\nresult = 'done'"}},
  });
  for (int n = 0; n < kCalls; ++n) {
    input +=
        json({{"id", n}, {"op", "call"}, {"name", "size"}, {"args", {{"pad", pad}}}}).dump() + "\n";
  }
  ServeProcess serve({"--workers", "1", "--pool-size", "1"});
  serve.Feed(input);
  ASSERT_TRUE(
      serve.WaitUntilWriterDoneOrStalled(std::chrono::seconds(2), std::chrono::seconds(120)));
  int64_t rss_kb = serve.StatusKb("VmRSS");
  size_t written = serve.written();
  dir_.Write("go", "");
  Outcome run = serve.Finish(std::chrono::seconds(300));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  // Unbounded, the server held all 300 MB of requests by now (and ~25 MB bounded).
  EXPECT_GT(rss_kb, 0);
  EXPECT_LT(rss_kb, 100 * 1024) << "the server read ahead without bound";
  EXPECT_LT(written, input.size() / 2) << "the client was never held back";
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), static_cast<size_t>(kCalls + 2)) << run.Describe().substr(0, 2000);
  EXPECT_EQ(answers["\"slow\""]["result"], "done");
  for (int n = 0; n < kCalls; ++n) {
    ASSERT_EQ(answers[std::to_string(n)]["data"], 100000) << n;
  }
}

// A line longer than one request may be is skipped without being held whole, and
// answered with an error naming its line; the server goes on.
TEST_F(ServeTest, OverlongLineIsSkippedWithAnErrorAnswer) {
  std::string input =
      "{\"id\": 1, \"op\": \"exec\", \"code\": \"" + std::string(64 << 20, 'x') + "\"}\n";
  input += Lines({{{"id", 2}, {"op", "exec"}, {"code", "result = 'after'"}}});
  ServeProcess serve({"--pool-size", "1"});
  serve.Feed(input);
  ASSERT_TRUE(serve.WaitForLines(2, std::chrono::seconds(120)));
  int64_t peak_kb = serve.StatusKb("VmHWM");
  Outcome run = serve.Finish(std::chrono::seconds(60));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe().substr(0, 2000);
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe().substr(0, 2000);
  const json& skipped = answers["null"];
  EXPECT_EQ(skipped["error"]["type"], "BadRequest") << skipped.dump();
  EXPECT_EQ(skipped["error"]["message"],
            "line 1 is longer than 16777216 bytes, the limit of one request; it was skipped");
  EXPECT_EQ(answers["2"]["result"], "after");
  // Held whole, the 64 MB line alone would have raised the peak past this.
  EXPECT_GT(peak_kb, 0);
  EXPECT_LT(peak_kb, 120 * 1024) << "peak RSS in kB";
}

// --- protocol descriptors (issue 7, item 14) -----------------------------------------

// Python that tries every way found to reach the host's descriptors by a path: the
// /proc/self/fd family, /dev/fd and /dev/std*, symlinks the code makes to them, a
// dir_fd on /proc, the parent's (the client's) descriptors for the same pipes, and a
// dir_fd whose relative path a checker resolving against the cwd would misjudge.
// Reached ones are written to (a forged answer for id 2) or read from (stealing
// requests); result: what was reached.
constexpr char kReopenHostDescriptors[] = R"PY(
import os, threading
FORGED = b'{"id": 2, "ok": true, "forged": true}\n'
pid, tid, ppid = os.getpid(), threading.get_native_id(), os.getppid()
host = set()
for n in range(64):
    try:
        st = os.fstat(n)
        host.add((st.st_dev, st.st_ino))
    except OSError:
        pass
owned = set()
def dir_fd(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    owned.add(fd)
    return fd
def link(target, name):
    try:
        os.symlink(target, name)
    except PermissionError:
        pass  # strict: no link out of the roots at all (a stronger rule than the one tested)
link('/proc', WORK_DIR + '/p')
# A directory as deep as the cwd, so that "../" * depth + WORK_DIR/x names WORK_DIR/x
# from the cwd but WORK_DIR/WORK_DIR/x from that directory.
depth = len([part for part in os.getcwd().split('/') if part])
deep = WORK_DIR + '/d' * max(depth, 1)
os.makedirs(deep)
os.makedirs(WORK_DIR + WORK_DIR)
bases = [(dir_fd(base), base, rel) for base, rel in
         [('/proc/self/fd', '{n}'), ('/proc', 'self/fd/{n}'), ('/', 'proc/self/fd/{n}'),
          (WORK_DIR, 'p/self/fd/{n}'),
          (deep, '../' * max(depth, 1) + WORK_DIR.lstrip('/') + '/x{n}')]]
reached, stolen = [], []
def attempt(path, n=None, at=None, foreign=False):
    for flags in (os.O_WRONLY, os.O_RDONLY):
        try:
            fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=at)
        except OSError:  # refused (PermissionError), or nothing there
            continue
        try:
            st = os.fstat(fd)
            if foreign and (st.st_dev, st.st_ino) not in host:
                continue  # another process's own file, not one of the host's
            reached.append(path if at is None else '%s (dir_fd)' % path)
            try:
                if flags == os.O_WRONLY:
                    os.write(fd, FORGED)
                else:
                    stolen.append(os.read(fd, 65536).decode(errors='replace'))
            except OSError:
                pass
        finally:
            os.close(fd)
for n in range(64):
    if n in owned:
        continue
    for path in ['/proc/self/fd/%d', '/proc/thread-self/fd/%d', '/proc/%d/fd/%%d' % pid,
                 '/proc/%d/task/%d/fd/%%d' % (pid, tid), '/proc/%d/fd/%%d' % tid, '/dev/fd/%d',
                 '/proc/self/fd/../fd/%d', '//proc/./self//fd/%d', WORK_DIR + '/p/self/fd/%d']:
        attempt(path % n)
    link('/proc/self/fd/%d' % n, WORK_DIR + '/l%d' % n)
    attempt(WORK_DIR + '/l%d' % n)
    link('p/self/fd/%d' % n, WORK_DIR + '/r%d' % n)
    attempt(WORK_DIR + '/r%d' % n)
    link('/proc/self/fd/%d' % n, WORK_DIR + WORK_DIR + '/x%d' % n)
    for at, base, rel in bases:
        if at is not None:
            attempt(rel.format(n=n), at=at)
    attempt('/proc/%d/fd/%d' % (ppid, n), foreign=True)
for path in ['/dev/stdin', '/dev/stdout', '/dev/stderr']:
    attempt(path)
result = {'reached': sorted(set(reached)), 'stolen': stolen}
)PY";

class ProtocolDescriptorTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
};

// Whatever the policy (yolo included: protecting the host is not a policy rule),
// code cannot reopen serve's protocol descriptors, or any other descriptor the host
// holds, by a path: no forged answer arrives, no request is stolen.
TEST_P(ProtocolDescriptorTest, HostDescriptorsCannotBeReopenedByPath) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"policy", GetParam()}, {"code", kReopenHostDescriptors}},
      {{"id", 2}, {"op", "exec"}, {"code", "result = 'genuine'"}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests), std::chrono::seconds(120));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(CountLines(run.out), 2u) << run.Describe();
  ASSERT_EQ(answers["1"]["ok"], true) << answers["1"].dump();
  EXPECT_EQ(answers["1"]["result"]["reached"], json::array()) << answers["1"].dump();
  EXPECT_EQ(answers["1"]["result"]["stolen"], json::array()) << answers["1"].dump();
  EXPECT_FALSE(answers["2"].contains("forged")) << answers["2"].dump();
  EXPECT_EQ(answers["2"]["result"], "genuine") << answers["2"].dump();
}

INSTANTIATE_TEST_SUITE_P(Policies, ProtocolDescriptorTest, ::testing::Values("yolo", "strict"),
                         [](const auto& info) { return info.param; });

// Where processes are allowed (yolo), a child cannot be handed a host descriptor:
// as its stdout (subprocess), in pass_fds, or through posix_spawn's file actions.
TEST_F(ServeTest, ChildProcessesAreNotHandedHostDescriptors) {
  constexpr char kCode[] = R"PY(
import os, subprocess
FORGED = '{"id": 2, "ok": true, "forged": true}'
refused, ran = [], []
def attempt(label, call):
    try:
        call()
        ran.append(label)
    except PermissionError:
        refused.append(label)
    except OSError:  # the host closed that descriptor meanwhile (its threads open and close some)
        refused.append(label)
def is_open(n):
    try:
        os.fstat(n)
        return True
    except OSError:
        return False
host_fds = [n for n in range(64) if is_open(n)]  # the code has opened nothing yet
for n in host_fds:
    attempt('stdout=%d' % n, lambda: subprocess.run(['/bin/sh', '-c', 'echo ' + repr(FORGED)], stdout=n, stderr=subprocess.DEVNULL))
    attempt('stdin=%d' % n, lambda: subprocess.run(['/bin/true'], stdin=n))
    attempt('pass_fds=%d' % n, lambda: subprocess.run(['/bin/sh', '-c', 'echo %s >&%d' % (repr(FORGED), n)], pass_fds=[n], stderr=subprocess.DEVNULL))
    attempt('spawn dup2 %d' % n, lambda: os.waitpid(os.posix_spawn('/bin/sh', ['sh', '-c', 'echo ' + repr(FORGED)], {}, file_actions=[(os.POSIX_SPAWN_DUP2, n, 1)]), 0))
    attempt('spawn open %d' % n, lambda: os.waitpid(os.posix_spawn('/bin/sh', ['sh', '-c', 'echo ' + repr(FORGED)], {}, file_actions=[(os.POSIX_SPAWN_OPEN, 1, '/proc/self/fd/%d' % n, os.O_WRONLY, 0)]), 0))
# What the code made itself still works.
r, w = os.pipe()
subprocess.run(['/bin/bash', '-c', 'echo mine >&%d' % w], pass_fds=[w])  # dash: fds 0-9 only
os.close(w)
own = os.read(r, 100).decode()
out = subprocess.run(['/bin/echo', 'captured'], capture_output=True).stdout.decode()
result = {'ran': ran, 'refused': len(refused) == 5 * len(host_fds), 'own': own, 'out': out}
)PY";
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"policy", "yolo"}, {"code", kCode}},
      {{"id", 2}, {"op", "exec"}, {"code", "result = 'genuine'"}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests), std::chrono::seconds(120));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  ASSERT_EQ(CountLines(run.out), 2u) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_TRUE(answers["1"]["result"].is_object()) << answers["1"].dump();
  const json& result = answers["1"]["result"];
  EXPECT_EQ(result["ran"], json::array()) << answers["1"].dump();
  EXPECT_EQ(result["refused"], true) << answers["1"].dump();
  EXPECT_EQ(result["own"], "mine\n") << answers["1"].dump();
  EXPECT_EQ(result["out"], "captured\n") << answers["1"].dump();
  EXPECT_EQ(answers["2"]["result"], "genuine") << answers["2"].dump();
}

// Answers going to a regular file (pyhost serve > answers.jsonl): the file cannot be
// opened, truncated or linked by its name, nor its descriptor mapped, to forge or
// corrupt answers, under yolo too.
TEST_F(ServeTest, AnswersFileCannotBeReachedByNameOrMapping) {
  const std::string answers_path = dir_.PathOf("answers.jsonl");
  constexpr char kCode[] = R"PY(
import mmap, os
FORGED = b'{"id": 9, "ok": true, "forged": true}\n'
path = args['answers']
fds = [n for n in range(64) if os.path.exists('/proc/self/fd/%d' % n) and
       os.readlink('/proc/self/fd/%d' % n) == path]
reached = []
def attempt(how, act):
    try:
        act()
        reached.append(how)
    except PermissionError:
        pass  # refused
    except OSError:
        pass  # not possible here anyway (a link across file systems)
def link_then_append():
    os.link(path, WORK_DIR + '/hard')
    with open(WORK_DIR + '/hard', 'ab') as f:
        f.write(FORGED)
def symlink_then_append():
    os.symlink(path, WORK_DIR + '/soft')
    with open(WORK_DIR + '/soft', 'ab') as f:
        f.write(FORGED)
attempt('append by name', lambda: open(path, 'ab').write(FORGED))
attempt('overwrite by name', lambda: open(path, 'r+b').write(b'X'))
attempt('read by name', lambda: open(path, 'rb').read())
attempt('truncate by name', lambda: os.truncate(path, 0))
attempt('hard link', link_then_append)
attempt('symlink', symlink_then_append)
for n in fds:
    attempt('mmap %d' % n, lambda: mmap.mmap(n, os.fstat(n).st_size, access=mmap.ACCESS_WRITE).write(b'X'))
result = {'found': len(fds) > 0, 'reached': reached}
)PY";
  ServeProcess serve({"--workers", "1"}, answers_path);
  serve.Feed(Lines({
      {{"id", 1}, {"op", "exec"}, {"code", "result = 'first'"}},
      {{"id", 2},
       {"op", "exec"},
       {"policy", "yolo"},
       {"args", {{"answers", answers_path}}},
       {"code", kCode}},
      {{"id", 3}, {"op", "exec"}, {"code", "result = 'last'"}},
  }));
  Outcome run = serve.Finish(std::chrono::seconds(60));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  run.out = testutil::ReadFile(answers_path);
  ASSERT_EQ(CountLines(run.out), 3u) << run.out.substr(0, 3000);
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.out.substr(0, 3000);
  EXPECT_EQ(answers["1"]["result"], "first");
  EXPECT_EQ(answers["2"]["result"]["found"], true) << answers["2"].dump();
  EXPECT_EQ(answers["2"]["result"]["reached"], json::array()) << answers["2"].dump();
  EXPECT_EQ(answers["3"]["result"], "last");
}

// --- stopping: SIGINT, SIGTERM, a closed output (issue 7, item 8) --------------------

// serve stops reading: the running request is answered with KeyboardInterrupt, the
// ones not started with Interrupted, each once; exit 128+N; no work root left.
TEST_F(ServeTest, StopsOnSigintAnsweringEverything) {
  Outcome run = RunPyhost({"serve", "--workers", "1"},
                          Lines({{{"id", 1}, {"op", "exec"}, {"code", "while True:\n    pass\n"}},
                                 {{"id", 2}, {"op", "exec"}, {"code", "result = 2"}},
                                 {{"id", 3}, {"op", "exec"}, {"code", "result = 3"}}}),
                          std::chrono::seconds(20),
                          {SIGINT, std::chrono::milliseconds(600), /*keep_stdin_open=*/true});
  ASSERT_TRUE(run.exited) << run.Describe();
  EXPECT_EQ(run.exit_code, 130) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.Describe();
  EXPECT_EQ(answers["1"]["error"]["type"], "KeyboardInterrupt") << answers["1"];
  for (const char* id : {"2", "3"}) EXPECT_EQ(answers[id]["error"]["type"], "Interrupted");
  EXPECT_FALSE(WorkRootExists(run.pid));
}

// Code stuck in C past the grace: serve exits anyway, and still answers every request
// it read, the stuck one and those not started, with Interrupted (found by
// adversarial testing: the forced exit answered none).
TEST_F(ServeTest, ForcedExitStillAnswersEveryRequest) {
  Outcome run = RunPyhost({"serve", "--workers", "1"},
                          Lines({{{"id", 1}, {"op", "exec"}, {"code", "sum(range(10**12))"}},
                                 {{"id", 2}, {"op", "exec"}, {"code", "result = 2"}},
                                 {{"id", 3}, {"op", "exec"}, {"code", "result = 3"}}}),
                          std::chrono::seconds(20),
                          {SIGTERM, std::chrono::milliseconds(600), /*keep_stdin_open=*/true});
  ASSERT_TRUE(run.exited) << run.Describe();
  EXPECT_EQ(run.exit_code, 128 + SIGTERM) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.Describe();
  ASSERT_EQ(CountLines(run.out), 3u) << run.Describe();
  for (const char* id : {"1", "2", "3"})
    EXPECT_EQ(answers[id]["error"]["type"], "Interrupted") << id;
  EXPECT_FALSE(WorkRootExists(run.pid));
}

// A closed output is the end: no SIGPIPE death, no work root left.
TEST_F(ServeTest, ClosedOutputEndsTheServerCleanly) {
  std::vector<json> requests;
  for (int i = 0; i < 50; ++i)
    requests.push_back({{"id", i}, {"op", "exec"}, {"code", "print('x' * 1000)"}});
  Interrupt closed;
  closed.close_stdout = true;
  Outcome run = RunPyhost({"serve"}, Lines(requests), std::chrono::seconds(20), closed);
  EXPECT_TRUE(run.exited) << run.Describe();
  EXPECT_FALSE(WorkRootExists(run.pid));
}

// Once answers cannot be written, the requests read but not started are not run:
// their effects would be answered to no one (found by adversarial testing: serve ran
// every queued request after its output closed).
TEST_F(ServeTest, ClosedOutputRunsNoQueuedRequest) {
  std::string ran = dir_.PathOf("ran.txt");
  std::vector<json> requests;
  for (int i = 0; i < 40; ++i) {
    requests.push_back({{"id", i},
                        {"op", "exec"},
                        {"policy", "yolo"},
                        {"code", absl::StrCat("import time\ntime.sleep(0.05)\nopen(",
                                              json(ran).dump(), ", 'a').write('x')\n")}});
  }
  Interrupt closed;
  closed.close_stdout = true;
  Outcome run =
      RunPyhost({"serve", "--workers", "1"}, Lines(requests), std::chrono::seconds(20), closed);
  EXPECT_TRUE(run.exited) << run.Describe();
  std::string marks = testutil::ReadFile(ran);
  EXPECT_LE(marks.size(), 2u) << "requests ran after the output closed";
  EXPECT_FALSE(WorkRootExists(run.pid));
}

}  // namespace
}  // namespace pyhost::cli_test
