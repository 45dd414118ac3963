#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "process/restrictions.h"

namespace pyhost {
namespace {

absl::Status Set(int resource, const char* name, rlim_t soft, rlim_t hard) {
  rlimit current{};
  if (getrlimit(resource, &current) == 0 && current.rlim_max != RLIM_INFINITY) {
    hard = std::min(hard, current.rlim_max);  // never asks for more than allowed
    soft = std::min(soft, hard);
  }
  const rlimit limit{soft, hard};
  if (setrlimit(resource, &limit) != 0) {
    return absl::InternalError(absl::StrCat("setrlimit(", name, "): ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyRlimits(const ChildRestrictions& r) {
  auto value = [](int64_t v) { return static_cast<rlim_t>(v); };
  for (absl::Status s : {
           r.memory_bytes
               ? Set(RLIMIT_AS, "RLIMIT_AS", value(*r.memory_bytes), value(*r.memory_bytes))
               : absl::OkStatus(),
           // Soft below hard: the kernel sends SIGXCPU at the soft limit (the
           // outcome CpuLimitExceeded), SIGKILL at the hard one.
           r.cpu_seconds
               ? Set(RLIMIT_CPU, "RLIMIT_CPU", value(*r.cpu_seconds), value(*r.cpu_seconds + 1))
               : absl::OkStatus(),
           Set(RLIMIT_NPROC, "RLIMIT_NPROC", value(r.max_processes), value(r.max_processes)),
           Set(RLIMIT_FSIZE, "RLIMIT_FSIZE", value(r.max_file_bytes), value(r.max_file_bytes)),
           Set(RLIMIT_NOFILE, "RLIMIT_NOFILE", value(r.max_open_files), value(r.max_open_files)),
           Set(RLIMIT_CORE, "RLIMIT_CORE", 0, 0),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace pyhost
