#include "policy/lockdown.h"

namespace pyhost {

const Policy& LockdownPolicy() {
  static const Policy* lockdown = [] {
    auto* policy = new Policy();
    policy->name = "pyhost-between-executions";
    policy->import_allow = {"-"};  // matches no module: no imports of the code's own
    policy->work_dir = false;
    return policy;
  }();
  return *lockdown;
}

}  // namespace pyhost
