// Wall and thread-CPU time of one execution, in microseconds.
#ifndef PYHOST_EMBED_STOPWATCH_H_
#define PYHOST_EMBED_STOPWATCH_H_

#include <time.h>

#include <chrono>

namespace pyhost {

class Stopwatch {
 public:
  Stopwatch() : wall_start_(std::chrono::steady_clock::now()), cpu_start_(ThreadCpuUs()) {}

  double WallUs() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - wall_start_)
        .count();
  }
  // CPU time of the calling thread since construction (same thread only).
  double CpuUs() const { return ThreadCpuUs() - cpu_start_; }

 private:
  static double ThreadCpuUs() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
  }

  std::chrono::steady_clock::time_point wall_start_;
  double cpu_start_;
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_STOPWATCH_H_
