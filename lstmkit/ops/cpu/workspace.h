// Large buffers of the fused loops (the states and gates a forward saves for backward, the gate
// gradients a backward fills), kept per thread and handed out again once nothing else holds
// them: autograd drops the saved ones after backward, the caller drops the gradients after its
// reductions and GEMMs. A fresh buffer of tens of MB costs a page fault per 4 KiB on every call,
// since glibc gives large blocks back to the system when they are freed. A buffer whose storage
// is still referenced anywhere (a kept result, a graph not yet backpropagated) is never reused.
// The pool keeps at most kPoolBuffers buffers per thread for as long as the thread lives: more
// than one training step of a model of a few layers has alive at its peak.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace lstmkit {

using at::Tensor;

// Smaller ones come from the allocator's free lists. Larger ones the C library maps afresh (its
// threshold starts at 128 KiB) or hands back to the system when the top of its heap frees:
// T=50 B=32 H=128 training took 379 page faults a call with a 1 MiB threshold here.
constexpr int64_t kPoolMinBytes = int64_t(128) << 10;
constexpr size_t kPoolBuffers = 64;

// A free buffer that no request took in this many is dropped (its memory goes back): it has left
// the calls' working set, say of a model trained before the current one.
constexpr int64_t kPoolStaleRequests = 4 * int64_t(kPoolBuffers);

// A flat buffer of numel T: the smallest free one of the calling thread's pool that holds numel
// and at most twice that, else a new one, which the pool keeps beside the others while it has
// fewer than kPoolBuffers. (Kept in place of any free one instead, a training step's small
// scratch buffers pushed out the large ones its next step needed again: at T=100 B=64 H=512,
// 19,000 page faults a call against 3,500.)
template <typename T> Tensor pooled_buffer(int64_t numel, const at::TensorOptions& opts) {
  if (numel * int64_t(sizeof(T)) < kPoolMinBytes) return at::empty({numel}, opts);
  struct Kept {
    Tensor buffer;
    int64_t last_request;   // the request that last took it
  };
  thread_local std::vector<Kept> pool;
  thread_local int64_t requests = 0;
  ++requests;
  auto free = [&](const Kept& kept) { return kept.buffer.storage().use_count() == 1; };
  pool.erase(std::remove_if(pool.begin(), pool.end(),
                            [&](const Kept& kept) {
                              return free(kept) && requests - kept.last_request > kPoolStaleRequests;
                            }),
             pool.end());
  Kept* best = nullptr;
  for (Kept& kept : pool) {
    const int64_t n = kept.buffer.numel();
    if (free(kept) && kept.buffer.device() == opts.device() && n >= numel && n <= 2 * numel &&
        (!best || n < best->buffer.numel())) {
      best = &kept;
    }
  }
  if (best) {
    best->last_request = requests;
    return best->buffer.narrow(0, 0, numel);
  }
  Tensor fresh = at::empty({numel}, opts);
  if (pool.size() < kPoolBuffers) pool.push_back({fresh, requests});
  return fresh;
}

// A scratch tensor of `sizes` from the pool: for what a call fills and drops (weight panels,
// per-thread buffers).
template <typename T> Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  int64_t numel = 1;
  for (int64_t d : sizes) numel *= d;
  return pooled_buffer<T>(numel, opts).view(sizes);
}

}  // namespace lstmkit
