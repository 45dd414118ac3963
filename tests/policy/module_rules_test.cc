#include "policy/module_rules.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy/lockdown.h"
#include "pyhost/policy.h"

namespace pyhost {
namespace {

using ::testing::HasSubstr;

Policy Named(const char* name) { return *NamedPolicy(name); }

// Judges `module` as the code's own import (or the stdlib's), filling `why`.
bool Judge(const Policy& policy, absl::string_view module, std::string* why,
           bool user_initiated = true, bool extra_network = false,
           absl::string_view sysconfig_data = "") {
  ImportContext context;
  context.user_initiated = user_initiated;
  context.extra_network = extra_network;
  context.sysconfig_data_module = sysconfig_data;
  return JudgeImport(policy, module, context, why);
}

// {pattern or package, module, whether it names the module}
struct Naming {
  const char* pattern;
  const char* module;
  bool names;
};

TEST(ModuleRulesTest, InPackageMeansTheNameOrBelowIt) {
  for (const Naming& c :
       {Naming{"json", "json", true}, Naming{"json", "json.decoder", true},
        Naming{"xml.etree", "xml.etree.ElementTree", true}, Naming{"json", "jsonschema", false},
        Naming{"json.decoder", "json", false}, Naming{"json", "js", false},
        Naming{"*", "json", false}}) {
    EXPECT_EQ(InPackage(c.module, c.pattern), c.names) << c.module << " in " << c.pattern;
  }
}

TEST(ModuleRulesTest, PatternsMatchWholeNamesAndTheirSubmodules) {
  for (const Naming& c :
       {Naming{"json", "json", true}, Naming{"json", "json.decoder", true},
        Naming{"json", "jsonschema", false}, Naming{"json.decoder", "json", false},
        Naming{"*", "anything.at.all", true},
        Naming{"-", "json", false}}) {  // the lockdown's allow list names nothing
    EXPECT_EQ(ModuleMatches(c.pattern, c.module), c.names) << c.pattern << " ~ " << c.module;
  }
  EXPECT_TRUE(AnyModuleMatches({"re", "ctypes"}, "ctypes.util"));
  EXPECT_FALSE(AnyModuleMatches({"re", "ctypes"}, "csv"));
  EXPECT_FALSE(AnyModuleMatches({}, "csv"));
}

TEST(ModuleRulesTest, NeverImportableCoversSubmodulesAndOnlyThose) {
  for (const char* never : {"_xxsubinterpreters", "_testcapi", "_testinternalcapi", "faulthandler",
                            "_ctypes_test", "_testcapi.sub"}) {
    EXPECT_TRUE(NeverImportable(never)) << never;
  }
  for (const char* other : {"json", "ctypes", "_testcapix", "faulthandlers", "test"}) {
    EXPECT_FALSE(NeverImportable(other)) << other;
  }
}

TEST(ModuleRulesTest, NeverImportableIsRefusedUnderEveryPolicy) {
  for (const char* profile : {"yolo", "balanced", "strict"}) {
    std::string why;
    EXPECT_FALSE(Judge(Named(profile), "_xxsubinterpreters", &why)) << profile;
    EXPECT_THAT(why, HasSubstr("is never allowed in pyhost (it can run code outside"));
    why.clear();
    EXPECT_FALSE(Judge(Named(profile), "faulthandler", &why, /*user_initiated=*/false)) << profile;
    EXPECT_THAT(why, HasSubstr("never allowed"));
  }
}

TEST(ModuleRulesTest, ProcessStateModulesAreExactNames) {
  EXPECT_TRUE(SharesProcessState("_decimal"));
  EXPECT_TRUE(SharesProcessState("_asyncio"));
  EXPECT_TRUE(SharesProcessState("_zoneinfo"));
  EXPECT_FALSE(SharesProcessState("decimal"));
  EXPECT_FALSE(SharesProcessState("_decimal.x"));
  std::string why;
  EXPECT_FALSE(Judge(Named("yolo"), "_asyncio", &why));
  EXPECT_THAT(why, HasSubstr("its state is shared by every interpreter of the process"));
}

TEST(ModuleRulesTest, DangerousModulesAreEveryEnforcingProfilesDenyList) {
  for (const char* profile : {"balanced", "data_science", "strict", "enterprise"}) {
    EXPECT_EQ(Named(profile).import_deny, DangerousModules()) << profile;
  }
  EXPECT_TRUE(Named("yolo").import_deny.empty());
  EXPECT_EQ(Named("strict").import_allow, CuratedStdlib());
  for (const char* dangerous : {"ctypes", "marshal", "mmap", "fcntl", "sys.monitoring"}) {
    EXPECT_TRUE(AnyModuleMatches(DangerousModules(), dangerous)) << dangerous;
  }
}

TEST(ModuleRulesTest, DenyListHoldsAlsoForTheStdlibsImports) {
  std::string why;
  EXPECT_TRUE(Judge(Named("strict"), "_json", &why, /*user_initiated=*/false));
  EXPECT_FALSE(Judge(Named("strict"), "ctypes.util", &why, /*user_initiated=*/false));
  EXPECT_EQ(why,
            "import of 'ctypes.util' is denied by policy 'strict' (on its deny list, also "
            "for the standard library)");
}

TEST(ModuleRulesTest, TheCodesOwnImportsFollowThePolicy) {
  std::string why;
  EXPECT_TRUE(Judge(Named("strict"), "json.decoder", &why));
  EXPECT_TRUE(Judge(Named("strict"), "concurrent", &why));  // a parent of an allowed pattern
  EXPECT_TRUE(Judge(Named("strict"), "__main__", &why));
  EXPECT_FALSE(Judge(Named("strict"), "socket", &why));
  EXPECT_EQ(why, "import of 'socket' is not allowed by policy 'strict' (not on its allow list)");
  EXPECT_FALSE(Judge(Named("strict"), "ctypes", &why));
  EXPECT_EQ(why, "import of 'ctypes' is not allowed by policy 'strict' (on its deny list)");
  EXPECT_TRUE(Judge(Named("yolo"), "ctypes", &why));
  EXPECT_TRUE(Judge(Named("balanced"), "socket", &why));
}

TEST(ModuleRulesTest, ANetworkAllowlistUnlocksTheModulesThatConnect) {
  Policy strict = Named("strict");
  std::string why;
  EXPECT_FALSE(Judge(strict, "urllib.request", &why));
  EXPECT_TRUE(Judge(strict, "urllib.request", &why, true, /*extra_network=*/true));
  strict.network = {"api.example.com"};
  for (const std::string& module : NetworkModules()) {
    EXPECT_TRUE(UnlockedByNetworkAllowlist(module)) << module;
    EXPECT_TRUE(Judge(strict, module, &why)) << module;
  }
  // Exact names: a package's other submodules stay out.
  EXPECT_FALSE(UnlockedByNetworkAllowlist("http.server"));
  EXPECT_FALSE(Judge(strict, "http.server", &why));
  // The deny list still wins.
  strict.import_deny.push_back("ssl");
  EXPECT_FALSE(Judge(strict, "ssl", &why));
  EXPECT_THAT(why, HasSubstr("on its deny list"));
}

TEST(ModuleRulesTest, SysconfigsDataModuleIsJudgedAsSysconfig) {
  Policy strict = Named("strict");
  std::string why;
  EXPECT_FALSE(Judge(strict, "_sysconfigdata__x86_64-linux-gnu", &why));
  EXPECT_TRUE(Judge(strict, "_sysconfigdata__x86_64-linux-gnu", &why, true, false,
                    "_sysconfigdata__x86_64-linux-gnu"));
  strict.import_deny.push_back("sysconfig");
  EXPECT_FALSE(Judge(strict, "_sysconfigdata__x86_64-linux-gnu", &why, true, false,
                     "_sysconfigdata__x86_64-linux-gnu"));
  EXPECT_EQ(why, "import of 'sysconfig' is not allowed by policy 'strict' (on its deny list)");
}

TEST(ModuleRulesTest, UnencodableNamesPassOnlyWithoutRules) {
  std::string why;
  EXPECT_TRUE(JudgeUnencodableImport(Named("yolo"), "\\udcff", &why));
  EXPECT_FALSE(JudgeUnencodableImport(Named("balanced"), "\\udcff", &why));
  EXPECT_EQ(why,
            "import of '\\udcff' is not allowed by policy 'balanced' (a module name that "
            "is not valid UTF-8 text matches no rule)");
}

TEST(ModuleRulesTest, LockdownAllowsNothingOfTheCodesOwn) {
  const Policy& lockdown = LockdownPolicy();
  EXPECT_EQ(&lockdown, &LockdownPolicy());  // one for the process
  EXPECT_EQ(lockdown.name, "pyhost-between-executions");
  EXPECT_TRUE(lockdown.enforce);
  EXPECT_FALSE(lockdown.work_dir);
  EXPECT_FALSE(lockdown.processes);
  EXPECT_FALSE(lockdown.threads);
  EXPECT_TRUE(lockdown.network.empty());
  EXPECT_TRUE(lockdown.read_paths.empty());
  EXPECT_TRUE(lockdown.write_paths.empty());
  EXPECT_TRUE(lockdown.env.empty());
  std::string why;
  EXPECT_FALSE(Judge(lockdown, "json", &why));
  EXPECT_EQ(why,
            "import of 'json' is not allowed by policy 'pyhost-between-executions' (not "
            "on its allow list)");
  EXPECT_TRUE(Judge(lockdown, "json", &why, /*user_initiated=*/false));  // the stdlib's own
  EXPECT_FALSE(Judge(lockdown, "socket", &why));
}

}  // namespace
}  // namespace pyhost
