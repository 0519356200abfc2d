// Large buffers a backward loop fills and its caller drops before the next call (the gate
// gradients, which the caller reads once for its reductions and GEMMs), kept per thread and
// handed out again when nothing else still holds them. A fresh buffer of tens of MB costs a
// page fault per 4 KiB on every call: glibc gives large blocks back to the system when they are
// freed. A buffer someone kept (its storage referenced outside the cache) is never reused.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>

namespace lstmkit {

// Named places in the cache; a loop uses each for one buffer per call.
enum class Reuse { First, Second, Third, Fourth, kCount };

// A flat buffer of numel T from the calling thread's cache slot, or a new one (which the slot
// then keeps) when the slot's is smaller or still in use. The cache lives as long as the thread.
template <typename T> Tensor reused_buffer(Reuse slot, int64_t numel, const at::TensorOptions& opts) {
  thread_local std::array<Tensor, static_cast<size_t>(Reuse::kCount)> cache;
  Tensor& kept = cache[static_cast<size_t>(slot)];
  const bool free = kept.defined() && kept.storage().use_count() == 1 && kept.numel() >= numel &&
                    kept.device() == opts.device();
  if (!free) kept = at::empty({numel}, opts);
  return kept.narrow(0, 0, numel);
}

}  // namespace lstmkit
