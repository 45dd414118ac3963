// PYHOST_CHECK: a precondition that holds unless pyhost itself has a bug (the GIL and
// thread-state rules of embed/). A failure prints where and why, then aborts: going on
// with the wrong thread state would corrupt the interpreter or deadlock later.
#ifndef PYHOST_BINDINGS_CHECK_H_
#define PYHOST_BINDINGS_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define PYHOST_CHECK(cond, why)                                                                 \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      std::fprintf(stderr, "pyhost: %s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   why);                                                                        \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)

#endif  // PYHOST_BINDINGS_CHECK_H_
