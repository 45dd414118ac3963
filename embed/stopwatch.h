// Wall-clock time of one execution (or of a part of it), in microseconds. The CPU
// time of an execution is its limits' (guards/execution_limits.h): the thread that
// ran the code, which is not always the caller's.
#ifndef PYHOST_EMBED_STOPWATCH_H_
#define PYHOST_EMBED_STOPWATCH_H_

#include <chrono>

namespace pyhost {

class Stopwatch {
 public:
  Stopwatch() : wall_start_(std::chrono::steady_clock::now()) {}

  double WallUs() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - wall_start_)
        .count();
  }

 private:
  std::chrono::steady_clock::time_point wall_start_;
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_STOPWATCH_H_
