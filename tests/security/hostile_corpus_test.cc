// The hostile corpus: every family's cases (hostile_fixture.h), each denied without
// side effects, and the host still answering afterwards.
#include <stdlib.h>

#include <vector>

#include "tests/security/hostile_fixture.h"

namespace pyhost::hostile {
namespace {

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (std::vector<Case> (*family)() :
       {ImportCases, CodeCases, FileCases, ProcessCases, HostStateCases, NetworkCases}) {
    std::vector<Case> more = family();
    cases.insert(cases.end(), more.begin(), more.end());
  }
  return cases;
}

TEST_P(HostileCaseTest, IsDeniedWithoutSideEffects) {
  ASSERT_NE(host_, nullptr);
  const Case& c = GetParam();
  if (!c.known_gap.empty() && getenv("HOSTILE_RUN_KNOWN_GAPS") == nullptr) {
    GTEST_SKIP() << "known gap (docs/security.md): " << c.known_gap
                 << " (HOSTILE_RUN_KNOWN_GAPS=1 runs it)";
  }
  if (c.isolate) {
    EXPECT_EXIT(RunIsolated([&] { return RunParam(c); }), ::testing::ExitedWithCode(0), "")
        << "the case must be denied without side effects, and the host process must survive";
  } else {
    for (const std::string& problem : RunParam(c)) ADD_FAILURE() << problem;
  }
  std::vector<std::string> problems;
  CheckHostAnswers(*host_, problems);
  for (const std::string& problem : problems) ADD_FAILURE() << problem;
}

INSTANTIATE_TEST_SUITE_P(Corpus, HostileCaseTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace pyhost::hostile
