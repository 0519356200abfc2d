// A team of threads that lives for a whole sequence (one OpenMP parallel region per call, an
// OpenMP barrier between steps): how many threads, and which blocks of units each one owns.
#pragma once

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>
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
  // Inside a parallel region the call is one of several running side by side (in_batch_chunks).
  if (work_per_step < kMinTeamWork || omp_in_parallel()) return {1, 1};
  const int pool = at::get_num_threads();
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(pool, blocks)));
  return {workers > 1 ? pool : 1, workers};
}

// A team forward walks its unit blocks in chunks whose gate panels fit together in a core's L2
// (1 MiB on the AMD machines measured): 512 KiB is 4 blocks of 16 units x 4 gates x 512 inputs.
constexpr int64_t kPanelChunkBytes = 512 * 1024;

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

// A small layer can also split the batch instead of the units: each thread runs the whole
// loop alone for its own rows, with all the weights, and meets no barrier. That pays where the
// weights stay in a core's L2 cache and the per-step barriers (and, for the layer norm, the
// cross-thread row sums) weigh against the products. Measured, layernorm inference, batch
// split against unit split: 0.85-0.88 at H=64-128 (weights up to 512 KiB), 0.94-0.95 at H=256
// with 32 or more rows a thread (2 MiB), 1.01 at H=256 with 16, 1.05 at H=512 (8 MiB); the
// 2-layer bidirectional H=256 forward, whose second layer (I=512) has 2.25-3 MiB, 0.93-0.98
// with that layer split too.
constexpr int64_t kSplitAnyBatchBytes = int64_t(640) << 10;
constexpr int64_t kSplitLargeBatchBytes = int64_t(3) << 20;
constexpr int64_t kSplitLargeBatchRows = 32;
// Training splits only with this many rows a thread or more: each chunk's backward then sums
// whole weight gradients for its rows, and a few rows a step make poor use of them. Measured,
// training (forward + backward) in chunks against the unit split, paired in one process,
// T=50 B=32 unless said: layernorm 0.62-0.91 at H=128, 0.92-0.95 at H=64, 0.99 at T=100 B=64
// H=256, 0.95 for the 2-layer bidirectional H=256; GRU 0.98-1.00 in five runs of seven at
// H=128 (1.04 and 1.06 in two), 0.90-0.98 at T=100 B=64 H=256. The cells with one barrier a
// step gain least: vanilla and peephole 0.99-1.03 in calm runs. But the machine's slow spells
// (README, Speed) stretch every barrier: in one, vanilla took 0.78 at T=50 and 0.89 at H=256,
// the 2-layer bidirectional peephole 0.92, and full runs found the unit split's T=50 training
// 40 % slower than in calm ones, the split layernorm cell's 8 %.
constexpr int64_t kSplitTrainingRows = 16;

// How many chunks of the batch to run side by side (at most one per thread), or 1: the units
// are split instead. weight_bytes: W_ih and W_hh together; store: a training forward.
inline int batch_chunks(int64_t B, int64_t weight_bytes, bool store) {
  const int pool = at::get_num_threads();
  if (pool < 2 || omp_in_parallel() || weight_bytes > kSplitLargeBatchBytes) return 1;
  int64_t rows = weight_bytes <= kSplitAnyBatchBytes ? kPanelRows : kSplitLargeBatchRows;
  if (store) rows = std::max(rows, kSplitTrainingRows);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(pool, B / rows)));
}

// Rows [b0, b0 + n) of chunk c of `chunks` over B rows; the Python side (bptt_util.py's
// batch_chunk_rows) splits the same way.
inline std::pair<int64_t, int64_t> chunk_rows(int64_t B, int chunks, int c) {
  const int64_t b0 = B * c / chunks;
  return {b0, B * (c + 1) / chunks - b0};
}

// run(c, b0, n) for the `chunks` pieces of the B rows (chunk_rows), one thread each; its
// results in the chunks' order. An exception inside is rethrown here (it may not leave the region).
template <typename Run> std::vector<std::vector<Tensor>> in_batch_chunks(int64_t B, int chunks, const Run& run) {
  std::vector<std::vector<Tensor>> parts(chunks);
  std::exception_ptr error;
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int c = 0; c < chunks; ++c) {
    try {
      const auto [b0, n] = chunk_rows(B, chunks, c);
      parts[c] = run(c, b0, n);
    } catch (...) {
#pragma omp critical
      error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  return parts;
}

// Rows [b0, b0 + n) of dimension `dim` of an optional tensor (undefined stays undefined).
inline OptTensor rows_of(const OptTensor& t, int64_t dim, int64_t b0, int64_t n) {
  if (!t || !t->defined()) return t;
  return t->narrow(dim, b0, n);
}

// A forward over x [T, B, I] in batch chunks: run(b0, n, y_rows) runs rows [b0, b0 + n) alone,
// writing y_rows (those rows of y: of out, where given), and returns the loop's results (y,
// then `states` final states [.., n, N], then what it saved for backward). Returns y and the
// states for the whole batch, then each chunk's saved tensors in turn (with store; without,
// the undefined ones of one chunk): the backward runs in the same chunks.
template <typename Run>
std::vector<Tensor> forward_in_batch_chunks(const Tensor& x, const OptTensor& out, int64_t P, int chunks, int states,
                                            bool store, const Run& run) {
  const int64_t B = x.size(1);
  Tensor y = out && out->defined() ? *out : at::empty({x.size(0), B, P}, x.options());
  auto parts = in_batch_chunks(B, chunks, [&](int, int64_t b0, int64_t n) { return run(b0, n, y.narrow(1, b0, n)); });
  std::vector<Tensor> result{y};
  for (int s = 1; s <= states; ++s) {
    std::vector<Tensor> pieces;
    for (const auto& part : parts) pieces.push_back(part[s]);
    result.push_back(at::cat(pieces, -2));
  }
  for (const auto& part : parts) {
    result.insert(result.end(), part.begin() + 1 + states, part.end());
    if (!store) break;
  }
  return result;
}

// A backward over x [T, B, I] in the chunks its forward ran in: run(c, b0, n, dx_rows) runs
// chunk c's rows alone and returns its results, with dx written into dx_rows (those rows of one
// [T, B, I] dx for the whole batch: no join after) where its loop makes dx. The results come back
// one chunk after another, each padded with undefined tensors to `width`, then the whole dx:
// undefined unless every chunk wrote its rows there (value dx_at of each chunk's results defined).
template <typename Run>
std::vector<Tensor> backward_in_batch_chunks(const Tensor& x, int chunks, size_t width, size_t dx_at,
                                             const Run& run) {
  Tensor dx = at::empty(x.sizes(), x.options());
  auto parts = in_batch_chunks(x.size(1), chunks,
                               [&](int c, int64_t b0, int64_t n) { return run(c, b0, n, dx.narrow(1, b0, n)); });
  std::vector<Tensor> result;
  bool whole = true;
  for (auto& part : parts) {
    part.resize(width);
    whole = whole && part[dx_at].defined();
    result.insert(result.end(), part.begin(), part.end());
  }
  result.push_back(whole ? dx : Tensor());
  return result;
}

// The blocks [first, last) that thread tid owns, of `blocks` shared among the first `workers`
// threads of the region (at most the team's workers, fewer if the runtime gave fewer threads).
struct Slice {
  int64_t first, last;
  Slice(int64_t blocks, int tid, int workers)
      : first(tid < workers ? blocks * tid / workers : blocks),
        last(tid < workers ? blocks * (tid + 1) / workers : blocks) {}
  // The hidden units its blocks of L cover, of H: [unit0, unit0 + units) (none past the workers).
  int64_t unit0(int64_t L) const { return first * L; }
  int64_t units(int64_t H, int64_t L) const { return std::max<int64_t>(0, std::min(H, last * L) - first * L); }
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
// recurrent product, and the [T, B, G] projection never goes through memory. With `reversed`,
// step t reads x[T - 1 - t]: the reverse direction of a bidirectional layer runs on x as given,
// without a flipped copy. `y`, where given, is where the outputs go: a [T, B, H] view with a
// contiguous last dimension (one direction's half of a bidirectional layer's output), written
// in place of a tensor of the loop's own.
struct GateInput {
  Tensor xw, x, w_ih, bias;
  bool reversed = false;
  Tensor y;
  bool fused() const { return x.defined(); }
  Tensor output(int64_t steps, int64_t B, int64_t H, const at::TensorOptions& opts) const {
    return y.defined() ? y : at::empty({steps, B, H}, opts);
  }
};

// A team forward's side of its GateInput: where step t's gate pre-activations are (xw itself, or
// a buffer of their own: every step's when they are stored for backward, else one step's, each
// thread touching only its own units' columns), and with the fused input x_t's active rows and
// each thread's panels of W_ih. `active` may be null (every row runs every step).
template <typename T> class InputSide {
 public:
  InputSide(const GateInput& in, const ActiveRows* active, int threads, int64_t H, int64_t gates, bool store,
            const at::TensorOptions& opts)
      : in_(in), fused_(in.fused()), one_slot_(fused_ && !store), H_(H), gates_(gates),
        I_(fused_ ? in.x.size(2) : 0),
        rows_(active ? std::optional<ActiveInput<T>>(std::in_place, *active, fused_ ? threads : 0, I_, opts)
                     : std::nullopt),
        buffer_(fused_ ? pooled_buffer<T>((store ? in.x.size(0) : 1) * in.x.size(1) * gates * H, opts)
                             .view({store ? in.x.size(0) : 1, in.x.size(1), gates * H})
                       : in.xw),
        panels_(fused_ ? pooled_empty<T>({(H + Simd<T>::lanes - 1) / Simd<T>::lanes * I_ * gates * Simd<T>::lanes},
                                         opts)
                       : Tensor()) {}

  bool fused() const { return fused_; }
  int64_t input_size() const { return I_; }
  const Tensor& gates() const { return buffer_; }   // what backward gets as the saved gates
  T* gates_at(int64_t t) const {   // xw may be a batch chunk's rows of a larger one: by its stride
    return buffer_.template data_ptr<T>() + (one_slot_ ? 0 : t) * buffer_.stride(0);
  }
  const T* bias() const { return in_.bias.defined() ? in_.bias.template data_ptr<T>() : nullptr; }

  // W_ih's panels for the unit blocks [first, last) (fused only).
  void pack(int64_t first, int64_t last) const {
    if (fused_) pack_gate_panels(in_.w_ih.template data_ptr<T>(), H_, I_, gates_, first, last, panel(0));
  }
  T* panel(int64_t ub) const { return panels_.template data_ptr<T>() + ub * I_ * gates_ * Simd<T>::lanes; }

  // One row's product sums for unit block ub (its gates L apart, nb units used) into the row's
  // gate pre-activations `row` [G]: added to xw's part, or, with the fused input (whose sums
  // hold x_t W_ih too), written with the summed biases.
  void store_sums(T* row, const T* s, int64_t ub, int64_t nb) const {
    constexpr int64_t L = Simd<T>::lanes;
    const T* b = bias();
    for (int64_t g = 0; g < gates_; ++g) {
      T* out = row + g * H_ + ub * L;
      const T* sg = s + g * L;
      if (!fused_) {
        for (int64_t j = 0; j < nb; ++j) out[j] += sg[j];
      } else if (b) {
        const T* bg = b + g * H_ + ub * L;
        for (int64_t j = 0; j < nb; ++j) out[j] = sg[j] + bg[j];
      } else {
        copy_lanes(out, sg, nb);
      }
    }
  }

  // x_t's rows (x[T - 1 - t]'s when reversed), or its active ones gathered (thread tid's buffer).
  typename ActiveInput<T>::Rows x_rows(int64_t t, int tid) const {
    const int64_t at = in_.reversed ? in_.x.size(0) - 1 - t : t;
    const T* step = in_.x.template data_ptr<T>() + at * in_.x.stride(0);
    if (rows_) return rows_->rows(step, in_.x.stride(1), t, tid);
    return {step, in_.x.stride(1)};
  }

 private:
  const GateInput& in_;
  bool fused_, one_slot_;
  int64_t H_, gates_, I_;
  std::optional<ActiveInput<T>> rows_;
  Tensor buffer_, panels_;
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

// What a team forward's step t multiplies, for thread tid: the active rows (those past their
// end are carried by `cell` for the thread's units first), the recurrent input `src` and, with
// the fused input, x_t, each as the product reads them (the active rows side by side).
template <typename T> struct StepRows {
  int64_t count;
  const int64_t* of;
  const T* src;
  typename ActiveInput<T>::Rows x;
};

template <typename T, typename CellStep>
StepRows<T> step_rows(const ActiveRows& active, const ActiveInput<T>& input, const InputSide<T>& side, int64_t t,
                      int tid, const T* src, int64_t u0, int64_t units, const CellStep& cell) {
  const int64_t n = active.count[t];
  const int64_t* of = active.of(t);
  if (n < active.batch && units > 0) {
    for_inactive_rows(active.batch, of, n, [&](int64_t b) { cell.carry(b, u0, units); });
  }
  return {n, of, input.rows(src, t, tid),
          side.fused() ? side.x_rows(t, tid) : typename ActiveInput<T>::Rows{nullptr, 0}};
}

// A thread's panels for its unit blocks: of W_hh [gates * H, P] into pan, and of W_ih when the
// loop makes the input's product (side).
template <typename T>
inline void pack_own_panels(const Slice& own, const T* w_hh, int64_t H, int64_t P, int64_t gates, T* pan,
                            const InputSide<T>& side) {
  pack_gate_panels(w_hh, H, P, gates, own.first, own.last, pan);
  side.pack(own.first, own.last);
}

// The first step's recurrent input under recurrent dropout, h_in = h0 * rm, for the columns
// [c0, c0 + n) of every row of the [B, P] tensors (a thread's own; a barrier follows).
template <typename T>
inline void mask_columns(const T* h, const T* rm, int64_t B, int64_t P, int64_t c0, int64_t n, T* h_in) {
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = c0; j < c0 + n; ++j) h_in[b * P + j] = h[b * P + j] * rm[b * P + j];
  }
}

}  // namespace lstmkit
