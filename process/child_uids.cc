#include "process/child_uids.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace pyhost {

ChildUids& ChildUids::ForThisProcess() {
  static ChildUids* uids = new ChildUids();  // leaked: workers may outlive any Host
  return *uids;
}

ChildUids::ChildUids()
    : first_(kBase + static_cast<uid_t>(getpid() & 0x3fffff) * kPerProcess), in_use_(kPerProcess) {}

absl::StatusOr<ChildIdentity> ChildUids::Reserve(absl::Time deadline) {
  if (geteuid() != 0) return ChildIdentity();
  absl::MutexLock lock(&mu_);
  auto free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (bool used : in_use_) {
      if (!used) return true;
    }
    return false;
  };
  mu_.AwaitWithDeadline(absl::Condition(&free), deadline);
  for (int i = 0; i < kPerProcess; ++i) {
    if (in_use_[i]) continue;
    in_use_[i] = true;
    ChildIdentity identity;
    identity.uid = first_ + i;
    identity.gid = first_ + i;
    return identity;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("all ", kPerProcess,
                   " process-isolation uids of this host were in use (as many "
                   "children running) until the execution's deadline"));
}

void ChildUids::Release(const ChildIdentity& identity) {
  if (!identity.switched() || identity.uid < first_ || identity.uid >= first_ + kPerProcess) {
    return;
  }
  absl::MutexLock lock(&mu_);
  in_use_[identity.uid - first_] = false;
}

}  // namespace pyhost
