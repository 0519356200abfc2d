// A team of threads that lives for a whole sequence (one OpenMP parallel region per call, an
// OpenMP barrier between steps): how many threads, and which blocks of units each one owns.
#pragma once

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.h"

namespace lstmkit {

// Below this many multiply-adds per step, waking a second thread and waiting at the barrier
// costs more than the thread saves.
constexpr int64_t kMinTeamWork = int64_t(1) << 17;

// The threads a team loop's parallel region opens, and how many of them own units. The region
// opens the whole pool once it uses more than one thread: a smaller num_threads makes the GNU
// runtime end pool threads that ATen's next parallel op then starts again (PyTorch issue
// #32008). Threads beyond `workers` own nothing and only meet the barriers.
struct Team {
  int threads, workers;
};

inline Team team_size(int64_t blocks, int64_t work_per_step) {
  if (work_per_step < kMinTeamWork) return {1, 1};
  const int pool = at::get_num_threads();
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(pool, blocks)));
  return {workers > 1 ? pool : 1, workers};
}

// Asks for the next step's input part of a thread's units (gate g of units u0 .. u0 + n of each
// row of a [B, G] step, gates H apart) to be fetched while the current step runs: the loops read
// it once per step, from a [T, B, G] buffer too large to stay in cache.
template <typename T>
inline void prefetch_units(const T* step, int64_t B, int64_t G, int64_t H, int64_t gates, int64_t u0, int64_t n) {
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < gates; ++g) {
      for (int64_t j = 0; j < n; j += 64 / int64_t(sizeof(T))) __builtin_prefetch(step + b * G + g * H + u0 + j, 1);
    }
  }
}

// The blocks [first, last) that thread tid owns, of `blocks` shared among the first `workers`
// threads of the region (at most the team's workers, fewer if the runtime gave fewer threads).
struct Slice {
  int64_t first, last;
  Slice(int64_t blocks, int tid, int workers)
      : first(tid < workers ? blocks * tid / workers : blocks),
        last(tid < workers ? blocks * (tid + 1) / workers : blocks) {}
};

inline int team_workers(const Team& team) { return std::min(omp_get_num_threads(), team.workers); }

// Per step, the batch rows still inside their sequence. A row past its end (output masked to
// zero, every state carried unchanged: what lengths make of it) has nothing to compute, so the
// team loops leave it out of the step's GEMM: a padded batch costs what its real steps cost.
struct ActiveRows {
  int64_t batch = 0;
  std::vector<int64_t> rows;      // [T][B]: step t's active rows first, in order
  std::vector<int64_t> count;     // [T]
  const int64_t* of(int64_t t) const { return rows.data() + t * batch; }
  bool ragged() const {           // some row ends before the last step
    return std::any_of(count.begin(), count.end(), [&](int64_t n) { return n < batch; });
  }
};

// keeps: the state masks ([T, B, N] by strides, each with its width N) that must be 1 in a
// frozen row.
template <typename T>
ActiveRows active_rows(int64_t steps, int64_t B, const Mask<T>& out_mask,
                       std::initializer_list<std::pair<const Mask<T>*, int64_t>> keeps) {
  ActiveRows a;
  a.batch = B;
  a.rows.resize(steps * B);
  a.count.assign(steps, 0);
  for (int64_t t = 0; t < steps; ++t) {
    int64_t* list = a.rows.data() + t * B;
    for (int64_t b = 0; b < B; ++b) {
      bool frozen = out_mask.present() && out_mask.at(t, b, 0) == T(0);
      for (const auto& [keep, width] : keeps) {
        if (!frozen) break;
        if (!keep->present()) {
          frozen = false;
          break;
        }
        for (int64_t j = 0; j < width && frozen; ++j) frozen = keep->at(t, b, j) == T(1);
      }
      if (!frozen) list[a.count[t]++] = b;
    }
  }
  return a;
}

// Each thread's copy of a step's active rows of the recurrent input, so that the product reads
// them as one dense block; allocated only when some row ends early.
template <typename T> class ActiveInput {
 public:
  ActiveInput(const ActiveRows& active, int threads, int64_t width, const at::TensorOptions& opts)
      : active_(active), width_(width),
        buffer_(active.ragged() && threads > 0 ? at::empty({threads, active.batch, width}, opts) : Tensor()) {}

  // src [B, width] itself when every row runs at step t, else its active rows, gathered.
  const T* rows(const T* src, int64_t t, int tid) const { return rows(src, width_, t, tid).data; }

  // The same for rows `stride` apart; the result says how far apart its rows are.
  struct Rows {
    const T* data;
    int64_t stride;
  };
  Rows rows(const T* src, int64_t stride, int64_t t, int tid) const {
    const int64_t n = active_.count[t];
    if (n == active_.batch) return {src, stride};
    T* out = buffer_.data_ptr<T>() + tid * active_.batch * width_;
    const int64_t* list = active_.of(t);
    for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * width_, src + list[i] * stride, sizeof(T) * width_);
    return {out, width_};
  }

 private:
  const ActiveRows& active_;
  int64_t width_;
  Tensor buffer_;
};

// The input's part of the gates, as a team loop takes it. Either xw [T, B, G], the input
// projection of all steps (one GEMM before the loop), or x [T, B, I] (any strides but a
// contiguous last dimension), W_ih [G, I] and, where the cell folds them in, the summed biases
// [G]: then each thread multiplies its units' rows of W_ih with x_t inside the loop, beside the
// recurrent product, and the [T, B, G] projection never goes through memory.
struct GateInput {
  Tensor xw, x, w_ih, bias;
  bool fused() const { return x.defined(); }
};

// Calls f(b) for the rows of 0..B-1 missing from the sorted list `active` of n rows.
template <typename F> void for_inactive_rows(int64_t B, const int64_t* active, int64_t n, const F& f) {
  int64_t i = 0;
  for (int64_t b = 0; b < B; ++b) {
    if (i < n && active[i] == b) {
      ++i;
    } else {
      f(b);
    }
  }
}

}  // namespace lstmkit
