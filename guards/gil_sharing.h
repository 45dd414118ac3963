// Fair sharing of the GIL between interpreters on 3.11: while executions run, a
// ticker forwards the GIL requests of threads waiting in one interpreter to the
// interpreter whose code holds the GIL (bindings/cpython_internals.h), so that code
// looping in one request yields to the others every switch interval (5 ms) plus a
// tick, as threads of one interpreter do, instead of keeping the GIL until its
// deadline. Code stuck in C reaches no bytecode boundary and keeps it regardless.
//
//   GilSharing::Running running;  // around each execution (Isolations::Run)
//
// Thread-safety: thread-safe; needs no GIL.
#ifndef PYHOST_GUARDS_GIL_SHARING_H_
#define PYHOST_GUARDS_GIL_SHARING_H_

#include <cstdint>

namespace pyhost {

class GilSharing {
 public:
  // The ticker runs while at least one Running lives.
  class Running {
   public:
    Running();
    ~Running();
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;
  };

  // How many requests the ticker has forwarded since the process started.
  static int64_t forwarded();
};

}  // namespace pyhost

#endif  // PYHOST_GUARDS_GIL_SHARING_H_
