// What an interpreter may do while no request is active: between and after
// executions, code that ran once can leave finalizers, hooks and replaced methods
// behind, and they must never run without rules (at teardown, or in the next
// execution's setup). Internal to pyhost; audit_hooks/sandbox.h puts it in force
// (Sandbox::Deactivate).
//
//   sandbox.Activate({&LockdownPolicy(), "", "", {}});
#ifndef PYHOST_POLICY_LOCKDOWN_H_
#define PYHOST_POLICY_LOCKDOWN_H_

#include "pyhost/policy.h"

namespace pyhost {

// Nothing outside the stdlib, no imports of the code's own, no working directory, no
// network, no processes, no threads. Lives for the whole process.
const Policy& LockdownPolicy();

}  // namespace pyhost

#endif  // PYHOST_POLICY_LOCKDOWN_H_
