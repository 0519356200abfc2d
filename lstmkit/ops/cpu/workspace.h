// Large buffers of the fused loops (the states and gates a forward saves for backward, the gate
// gradients a backward fills), kept per thread and handed out again once nothing else holds
// them: autograd drops the saved ones after backward, the caller drops the gradients after its
// reductions and GEMMs. A fresh buffer of tens of MB costs a page fault per 4 KiB on every call,
// since glibc gives large blocks back to the system when they are freed. A buffer whose storage
// is still referenced anywhere (a kept result, a graph not yet backpropagated) is never reused.
// The pool keeps at most kPoolBuffers buffers per thread for as long as the thread lives: about
// what one training step of the model has alive at its peak.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace lstmkit {

using at::Tensor;

constexpr int64_t kPoolMinBytes = int64_t(1) << 20;   // smaller ones: the allocator's free lists serve
constexpr size_t kPoolBuffers = 48;

// A flat buffer of numel T: the smallest free one of the calling thread's pool that holds numel
// and at most twice that, else a new one, which the pool keeps in place of a free one (or beside
// them, up to kPoolBuffers).
template <typename T> Tensor pooled_buffer(int64_t numel, const at::TensorOptions& opts) {
  if (numel * int64_t(sizeof(T)) < kPoolMinBytes) return at::empty({numel}, opts);
  thread_local std::vector<Tensor> pool;
  auto free = [&](const Tensor& kept) {
    return kept.storage().use_count() == 1 && kept.device() == opts.device();
  };
  Tensor* best = nullptr;
  for (Tensor& kept : pool) {
    if (free(kept) && kept.numel() >= numel && kept.numel() <= 2 * numel && (!best || kept.numel() < best->numel())) {
      best = &kept;
    }
  }
  if (best) return best->narrow(0, 0, numel);
  Tensor fresh = at::empty({numel}, opts);
  for (Tensor& kept : pool) {
    if (free(kept)) {
      kept = fresh;
      return fresh;
    }
  }
  if (pool.size() < kPoolBuffers) pool.push_back(fresh);
  return fresh;
}

}  // namespace lstmkit
