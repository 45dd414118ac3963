// The memory budget of one execution: what the thread running it allocates through
// Python's allocators, net of what it frees, charged to the budget; the allocation
// that would pass it fails, so the code sees MemoryError (and the answer says
// MemoryLimitExceeded: embed/runner.cc).
//
//   InstallMemoryAccounting(/*malloc_object_domains=*/false);  // once, pre-init
//   MemoryBudget budget(256 << 20);
//   {
//     MemoryBudget::Charge charge(&budget);  // this thread's allocations count
//     ... run the code ...
//   }
//   budget.peak_bytes();
//
// What is counted: CPython's raw domain (every block over 512 bytes and what C
// modules ask of PyMem_RawMalloc) by its usable size, and pymalloc's 256 KiB arenas
// as they are mapped and unmapped (small objects live in them). With
// `malloc_object_domains` (the sanitizer build, where the object and buffer domains
// are malloc) those are counted by block instead. What is not: memory a C library
// takes from malloc directly (NumPy's data buffers), the stacks of threads, and the
// allocations of threads the code starts: process isolation's rlimits bound those.
// Thread-safety: a budget is charged from one thread at a time (the Charge's); its
// figures may be read from any thread.
#ifndef PYHOST_GUARDS_MEMORY_BUDGET_H_
#define PYHOST_GUARDS_MEMORY_BUDGET_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace pyhost {

// Wraps Python's allocators with the counting ones. Once, after Py_PreInitialize and
// before Py_Initialize (embed/runtime.cc).
void InstallMemoryAccounting(bool malloc_object_domains);

class MemoryBudget {
 public:
  explicit MemoryBudget(int64_t limit_bytes) : limit_(limit_bytes) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Charges the calling thread's allocations to `budget` (null: none) while it lives.
  class Charge {
   public:
    explicit Charge(MemoryBudget* budget);
    ~Charge();
    Charge(const Charge&) = delete;
    Charge& operator=(const Charge&) = delete;

   private:
    MemoryBudget* const previous_;
  };

  // The budget the calling thread's allocations are charged to, or null.
  static MemoryBudget* Current();

  // Whether `bytes` more fit; if so they are charged, else the refusal is recorded.
  bool Reserve(size_t bytes);
  // Charges (or, negative, credits) what was handed out or given back; never refuses.
  void Adjust(int64_t delta);

  int64_t limit_bytes() const { return limit_; }
  int64_t in_use_bytes() const { return in_use_.load(std::memory_order_relaxed); }
  int64_t peak_bytes() const { return peak_.load(std::memory_order_relaxed); }
  // Whether an allocation was refused, and the size of the last one.
  bool refused() const { return refused_bytes_.load(std::memory_order_relaxed) > 0; }
  // "memory limit of 256 MB (memory_mb) reached: an allocation of 3.0 GB was refused
  // with 1.2 MB in use".
  std::string DescribeRefusal() const;

 private:
  const int64_t limit_;
  std::atomic<int64_t> in_use_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> refused_bytes_{0};
  std::atomic<int64_t> refused_in_use_{0};  // in use when the last refusal came
};

}  // namespace pyhost

#endif  // PYHOST_GUARDS_MEMORY_BUDGET_H_
