// C stack exhaustion through C-level recursion that CPython 3.11 does not count in
// its recursion limit (a known crasher class): a chain of a million `map` objects,
// `next()` on it, and each map_next calls the next one's tp_iternext until the
// thread's stack overflows and the whole host dies with SIGSEGV. Likewise chains of
// filter, zip, enumerate and the itertools iterators, classmethod descriptors,
// mappingproxy objects, hashing nested tuples, attribute lookups through
// types.GenericAlias, and the deallocation of chains of objects without CPython's
// "trashcan" (enumerate, classmethod, property, cell, slice, weakref callbacks,
// deque, started generators...).
//
//   // Once, GIL held in the main interpreter, before any sandbox exists (called by
//   // GuardSharedTypes):
//   absl::Status guarded = GuardCRecursion();
//   // In each new interpreter, for the heap types of its C modules (csv.reader...):
//   absl::Status guarded = GuardCRecursionInInterpreter();
//
// What it does, in the shared static types' slots (and those heap types'):
//   - the recursive slots above check the C stack: below a reserve at the bottom of
//     the running thread's stack (a quarter of it plus 1 MiB, at most half) they
//     raise RecursionError instead of going deeper;
//   - deallocation of every static GC type (but tuple, list, dict, set, frozenset,
//     which have CPython's own) is unwound like CPython's trashcan: past 50 nested
//     deallocations an object's is deferred until the outermost one returns;
//   - types.MethodType objects nested (through MethodType() or classmethod.__get__)
//     deeper than kMaxMethodNesting are refused when made: their calls use
//     vectorcall, which has no slot to guard.
// What it does not hold is listed in docs/security.md ("C stack").
#ifndef PYHOST_GUARDS_C_STACK_H_
#define PYHOST_GUARDS_C_STACK_H_

#include <Python.h>

#include "absl/status/status.h"

namespace pyhost {

inline constexpr int kMaxMethodNesting = 1000;

absl::Status GuardCRecursion();
absl::Status GuardCRecursionInInterpreter();

// Whether the running thread is within the reserve at the bottom of its stack; then
// raises RecursionError naming `what` and returns true.
bool CStackExhausted(const char* what);

}  // namespace pyhost

#endif  // PYHOST_GUARDS_C_STACK_H_
