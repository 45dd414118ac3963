#include "guards/memory_budget.h"

#include <Python.h>

#include <malloc.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pyhost {
namespace {

thread_local MemoryBudget* t_budget = nullptr;

// One wrapped domain: the allocator it forwards to is its context.
struct Counted {
  PyMemAllocatorEx base;
};
Counted g_raw, g_mem, g_obj;
PyObjectArenaAllocator g_arena_base;

// The usable size is what malloc really hands out, and what free gives back.
int64_t Usable(void* p) { return p != nullptr ? int64_t(malloc_usable_size(p)) : 0; }

// Each refuses what would pass the budget before asking for it (a refused 3 GB block
// is never mapped), then charges what was really handed out.
void* CountedMalloc(void* ctx, size_t size) {
  auto* self = static_cast<Counted*>(ctx);
  MemoryBudget* budget = t_budget;
  if (budget == nullptr) return self->base.malloc(self->base.ctx, size);
  if (!budget->Reserve(size)) return nullptr;
  void* p = self->base.malloc(self->base.ctx, size);
  budget->Adjust(p != nullptr ? Usable(p) - int64_t(size) : -int64_t(size));
  return p;
}

void* CountedCalloc(void* ctx, size_t n, size_t size) {
  auto* self = static_cast<Counted*>(ctx);
  MemoryBudget* budget = t_budget;
  if (budget == nullptr) return self->base.calloc(self->base.ctx, n, size);
  size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total) || !budget->Reserve(total)) return nullptr;
  void* p = self->base.calloc(self->base.ctx, n, size);
  budget->Adjust(p != nullptr ? Usable(p) - int64_t(total) : -int64_t(total));
  return p;
}

void* CountedRealloc(void* ctx, void* old, size_t size) {
  auto* self = static_cast<Counted*>(ctx);
  MemoryBudget* budget = t_budget;
  if (budget == nullptr) return self->base.realloc(self->base.ctx, old, size);
  const int64_t before = Usable(old);
  const size_t growth = size > size_t(before) ? size - size_t(before) : 0;
  if (!budget->Reserve(growth)) return nullptr;
  void* p = self->base.realloc(self->base.ctx, old, size);
  budget->Adjust(p != nullptr ? Usable(p) - before - int64_t(growth) : -int64_t(growth));
  return p;
}

void CountedFree(void* ctx, void* p) {
  auto* self = static_cast<Counted*>(ctx);
  if (MemoryBudget* budget = t_budget; budget != nullptr) budget->Adjust(-Usable(p));
  self->base.free(self->base.ctx, p);
}

void* ArenaAlloc(void* ctx, size_t size) {
  MemoryBudget* budget = t_budget;
  if (budget != nullptr && !budget->Reserve(size)) return nullptr;
  void* p = g_arena_base.alloc(ctx, size);
  if (p == nullptr && budget != nullptr) budget->Adjust(-int64_t(size));
  return p;
}

void ArenaFree(void* ctx, void* p, size_t size) {
  if (MemoryBudget* budget = t_budget; budget != nullptr) budget->Adjust(-int64_t(size));
  g_arena_base.free(ctx, p, size);
}

void Wrap(PyMemAllocatorDomain domain, Counted& counted) {
  PyMem_GetAllocator(domain, &counted.base);
  PyMemAllocatorEx wrapped{&counted, CountedMalloc, CountedCalloc, CountedRealloc, CountedFree};
  PyMem_SetAllocator(domain, &wrapped);
}

std::string Size(int64_t bytes) {
  if (bytes >= (int64_t{1} << 30)) return absl::StrFormat("%.1f GB", bytes / double(1 << 30));
  if (bytes >= (1 << 20)) return absl::StrFormat("%.1f MB", bytes / double(1 << 20));
  return absl::StrFormat("%.1f KB", bytes / 1024.0);
}

}  // namespace

void InstallMemoryAccounting(bool malloc_object_domains) {
  Wrap(PYMEM_DOMAIN_RAW, g_raw);
  if (malloc_object_domains) {
    Wrap(PYMEM_DOMAIN_MEM, g_mem);
    Wrap(PYMEM_DOMAIN_OBJ, g_obj);
  }
  PyObject_GetArenaAllocator(&g_arena_base);
  PyObjectArenaAllocator wrapped{g_arena_base.ctx, ArenaAlloc, ArenaFree};
  PyObject_SetArenaAllocator(&wrapped);
}

MemoryBudget::Charge::Charge(MemoryBudget* budget) : previous_(t_budget) { t_budget = budget; }
MemoryBudget::Charge::~Charge() { t_budget = previous_; }

MemoryBudget* MemoryBudget::Current() { return t_budget; }

bool MemoryBudget::Reserve(size_t bytes) {
  const int64_t now = in_use_.load(std::memory_order_relaxed);
  if (bytes > static_cast<size_t>(INT64_MAX) || now + static_cast<int64_t>(bytes) > limit_) {
    refused_in_use_.store(now, std::memory_order_relaxed);
    refused_bytes_.store(
        bytes > static_cast<size_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(bytes),
        std::memory_order_relaxed);
    return false;
  }
  const int64_t after = now + static_cast<int64_t>(bytes);
  in_use_.store(after, std::memory_order_relaxed);
  if (after > peak_.load(std::memory_order_relaxed)) peak_.store(after, std::memory_order_relaxed);
  return true;
}

void MemoryBudget::Adjust(int64_t delta) {
  const int64_t after = in_use_.load(std::memory_order_relaxed) + delta;
  in_use_.store(after, std::memory_order_relaxed);
  if (after > peak_.load(std::memory_order_relaxed)) peak_.store(after, std::memory_order_relaxed);
}

std::string MemoryBudget::DescribeRefusal() const {
  return absl::StrCat("memory limit of ", limit_ >> 20,
                      " MB (memory_mb) reached: an allocation of ",
                      Size(refused_bytes_.load(std::memory_order_relaxed)), " was refused with ",
                      Size(in_use_bytes()), " in use");
}

}  // namespace pyhost
