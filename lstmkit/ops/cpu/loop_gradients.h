// dx and the weight gradients of a team backward, made inside its loop instead of as GEMMs over
// all steps after it: per step, dx_t = d_t W_ih, dW_ih += d_t^T x_t and dW_hh += d_t^T h_in_t,
// with d_t [B, G] the step's gate gradients. Each thread sums the weight-gradient rows of its own
// units while its own part of d_t is still in its cache (no barrier needed), and makes its own
// columns of dx_t beside its columns of dh_{t-1}. The products run at the panel kernel's speed,
// and the loop has more work between its barriers.
#pragma once

#include <vector>

#include "panel_gemm.h"
#include "team.h"
#include "workspace.h"

namespace lstmkit {

// A thread's rows of dW [gates * H, K] = sum_t d_t^T v_t (d_t [B, G], gate g of unit u at column
// g * H + u; v_t [B, K], rows vs apart): those of its unit blocks. Summed as tiles of kPanelRows
// columns of v by one unit block's gates, the kernel's register block, and written into dW at
// the end. d_t is read in place, whole vectors: the last unit block may read up to L - 1 values
// past a row of d_t (into the next gate's or row's, lanes whose sums write() drops), so the
// caller's d buffer has that much room after its last row.
template <typename T> class GradientTiles {
 public:
  static constexpr int64_t L = Simd<T>::lanes;
  static constexpr int64_t kTile = kPanelRows * kPanelVecs * L;

  GradientTiles(const Slice& own, int64_t H, int64_t gates, int64_t K)
      : first_(own.first), blocks_(std::max<int64_t>(0, own.last - own.first)), H_(H), gates_(gates), K_(K),
        col_tiles_((K + kPanelRows - 1) / kPanelRows), tiles_(blocks_ * col_tiles_ * kTile, T(0)) {}

  // += d^T v over `rows` rows: one or more steps' batches, consecutive in d (G apart) and vs
  // apart in v. Rows past their sequence's end have d = 0.
  void add(const T* d, int64_t G, const T* v, int64_t vs, int64_t rows) {
    for (int64_t i = 0; i < blocks_; ++i) {
      const T* block = d + (first_ + i) * L;
      for (int64_t ct = 0; ct < col_tiles_; ++ct) {
        const int64_t k0 = ct * kPanelRows;
        // The next tile, fetched while this one is summed: a large layer's tiles live in L3.
        // (Past the last tile this asks for addresses outside the buffer; a prefetch never faults.)
        const T* next = tile(i, ct) + kTile;
        for (int64_t e = 0; e < kTile; e += 64 / int64_t(sizeof(T))) {
          __builtin_prefetch(next + e, 1);
        }
        add_strided_panel_gemm<T>(std::min(kPanelRows, K_ - k0), gates_, v + k0, vs, rows, block,
                                  PanelStrides{G, H_}, tile(i, ct));
      }
    }
  }

  // Writes the thread's rows of dW [gates * H, K].
  void write(T* dw) const {
    for (int64_t i = 0; i < blocks_; ++i) {
      const int64_t u0 = (first_ + i) * L, nb = std::min(L, H_ - u0);
      for (int64_t ct = 0; ct < col_tiles_; ++ct) {
        const int64_t k0 = ct * kPanelRows, rows = std::min(kPanelRows, K_ - k0);
        const T* s = tiles_.data() + (i * col_tiles_ + ct) * kTile;
        for (int64_t g = 0; g < gates_; ++g) {
          for (int64_t j = 0; j < nb; ++j) {
            T* row = dw + (g * H_ + u0 + j) * K_ + k0;
            for (int64_t r = 0; r < rows; ++r) row[r] = s[(r * gates_ + g) * L + j];
          }
        }
      }
    }
  }

 private:
  T* tile(int64_t i, int64_t ct) { return tiles_.data() + (i * col_tiles_ + ct) * kTile; }

  int64_t first_, blocks_, H_, gates_, K_, col_tiles_;
  std::vector<T> tiles_;
};

// sum[j] += d[j] over n columns in double, and with a hat, sum_hat[j] += d[j] hat[j] too: a
// bias's, gain's or peephole's gradient as a column sum over all rows, made as the backward
// loop makes each row's gate gradients, while they are in cache. Each thread adds only its own
// columns.
template <typename T> inline void add_columns(const T* d, int64_t n, double* sum) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) sum[j] += double(d[j]);
}
template <typename T>
inline void add_columns(const T* d, const T* hat, int64_t n, double* sum, double* sum_hat) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const double dj = d[j];
    sum[j] += dj;
    sum_hat[j] += dj * hat[j];
  }
}

// Column sums as a tensor of T.
template <typename T> Tensor column_sums(const std::vector<double>& sums, const at::TensorOptions& opts) {
  Tensor out = at::empty({int64_t(sums.size())}, opts);
  std::copy(sums.begin(), sums.end(), out.data_ptr<T>());
  return out;
}

// The LSTM cells' (no layer norm) column sums beside the in-loop weight gradients: of the gate
// gradients [G], the biases' gradient, and with peepholes of da_i c_prev, da_f c_prev and
// da_o c_new [3H], the peepholes'. Shared by the team's threads, each adding its own units.
template <typename T> class GateSums {
 public:
  GateSums(bool on, int64_t G, int64_t H, bool peep) : H_(H), gates_(G / H), d_(on ? G : 0), peep_(on && peep ? 3 * H : 0) {}

  // Row b's gate gradients d [G] (i, f, g, o, or cifg's f, g, o) of units [u0, u0 + n); c_prev and
  // c_new: the row's [H] cells (read with peepholes only).
  void add(const T* d, const T* c_prev, const T* c_new, int64_t u0, int64_t n) {
    double* s = d_.data();
    if (!peep_.empty()) {
      const int64_t H = H_;
      add_columns(d + u0, c_prev + u0, n, s + u0, peep_.data() + u0);
      add_columns(d + H + u0, c_prev + u0, n, s + H + u0, peep_.data() + H + u0);
      add_columns(d + 2 * H + u0, n, s + 2 * H + u0);
      add_columns(d + 3 * H + u0, c_new + u0, n, s + 3 * H + u0, peep_.data() + 2 * H + u0);
    } else {
      for (int64_t g = 0; g < gates_; ++g) add_columns(d + g * H_ + u0, n, s + g * H_ + u0);
    }
  }

  Tensor biases(const at::TensorOptions& opts) const { return column_sums<T>(d_, opts); }
  Tensor peepholes(const at::TensorOptions& opts) const {
    return peep_.empty() ? Tensor() : column_sums<T>(peep_, opts);
  }

 private:
  int64_t H_, gates_;
  std::vector<double> d_, peep_;
};

// A [steps, B, G] buffer for the gate gradients with L zeros after its last row, for
// GradientTiles' whole-vector reads; from the thread's pool (workspace.h).
template <typename T> Tensor padded_steps(int64_t steps, int64_t B, int64_t G, const at::TensorOptions& opts) {
  const int64_t n = steps * B * G;
  Tensor flat = pooled_buffer<T>(n + Simd<T>::lanes, opts);
  flat.narrow(0, n, Simd<T>::lanes).zero_();
  return flat.narrow(0, 0, n).view({steps, B, G});
}

// The in-loop gradients a team backward makes when it is given the layer's input: x [T, B, I]
// (any strides but a contiguous last dimension), W_ih [G, I] and h_in [T, B, P], the recurrent
// input of every step; with a projection also h_core [T, B, H], its input. Without them (x undefined) the caller makes dx and the weight gradients
// after the loop. `reversed` (with or without them): step t read x[T - 1 - t] (team.h's
// GateInput), so its dx goes there, and dy comes in x's order too. dx_out, where given, is where
// the loop writes dx: a batch chunk's rows of the whole batch's dx (team.h's batch_chunks).
struct LoopInputs {
  Tensor x, w_ih, h_in, h_core;
  bool reversed = false;
  Tensor dx_out;
  bool present() const { return x.defined(); }
  int64_t x_step(int64_t t) const { return reversed ? x.size(0) - 1 - t : t; }
};

// Rows [b0, b0 + n) of x [T, B, I] for a chunk's backward, copied unless they are x itself: the
// in-loop weight-gradient sums read several steps' rows as one block only where they lie evenly
// spaced (T=50 B=32 H=128 in two chunks: the backward took 1.2x as long on the rows in place).
inline Tensor rows_for_sums(const Tensor& x, int64_t b0, int64_t n) {
  return n == x.size(1) ? x : x.narrow(1, b0, n).contiguous();
}

// The LoopInputs of a backward entry point's optional arguments, checked against the saved gates
// [T, B, G]; without the tensors (the caller's GEMMs after the loop) when x is not given or x or
// W_ih is not in the gates' dtype (a bfloat16 weight).
inline LoopInputs loop_inputs(const char* fn, const Tensor& gates, const OptTensor& x, const OptTensor& w_ih,
                              const OptTensor& h_in, const OptTensor& h_core, bool reversed,
                              const OptTensor& dx_out) {
  const LoopInputs none{Tensor(), Tensor(), Tensor(), Tensor(), reversed, Tensor()};
  if (!x || !x->defined()) return none;
  TORCH_CHECK(w_ih && w_ih->defined() && h_in && h_in->defined(), fn, ": x needs w_ih and h_in too");
  const auto dtype = gates.scalar_type();
  if (x->scalar_type() != dtype || w_ih->scalar_type() != dtype || h_in->scalar_type() != dtype) return none;
  const int64_t T = gates.size(0), B = gates.size(1), G = gates.size(2);
  TORCH_CHECK(x->dim() == 3 && x->size(0) == T && x->size(1) == B && x->stride(2) == 1, fn,
              ": expected x of shape [", T, ", ", B, ", I] with a contiguous last dimension, got ", x->sizes(),
              " with strides ", x->strides());
  TORCH_CHECK(w_ih->dim() == 2 && w_ih->size(0) == G && w_ih->size(1) == x->size(2) && w_ih->is_contiguous(), fn,
              ": expected a contiguous w_ih of shape [", G, ", ", x->size(2), "], got ", w_ih->sizes());
  TORCH_CHECK(h_in->dim() == 3 && h_in->size(0) == T && h_in->size(1) == B && h_in->is_contiguous(), fn,
              ": expected a contiguous h_in of shape [", T, ", ", B, ", P], got ", h_in->sizes());
  const Tensor core = h_core.value_or(Tensor());
  TORCH_CHECK(!core.defined() || (core.dim() == 3 && core.size(0) == T && core.size(1) == B && core.is_contiguous()),
              fn, ": expected a contiguous h_core of shape [", T, ", ", B, ", H], got ", core.sizes());
  const Tensor out = dx_out.value_or(Tensor());
  TORCH_CHECK(!out.defined() || (out.sizes() == x->sizes() && out.scalar_type() == dtype && out.stride(2) == 1 &&
                                 out.stride(1) == x->size(2)),
              fn, ": expected dx_out of shape ", x->sizes(), " with contiguous rows, got ", out.sizes(),
              " with strides ", out.strides());
  return LoopInputs{*x, *w_ih, *h_in, core, reversed, out};
}

// Up to this many bytes of weight-gradient tiles per thread the loop makes the gradients itself;
// past it, the GEMMs after the loop. Measured in one process, 2 threads, T=100 B=64 unless
// said, the backward pass against the same with the GEMMs after the loop (paired medians of
// 11-15 rounds; vanilla / layernorm / GRU): T=50 B=32 H=128 (256 KiB a thread) 0.86 / 0.88 /
// 0.88; H=256 (1 MiB) 0.89 / 0.88 / 0.94; I=512 H=256 (1.5 MiB) 0.91 / 1.03 / 0.99; H=512
// (4 MiB) 0.97 / 0.92 / 1.00. Larger layers were not measured.
constexpr int64_t kLoopGradientBytes = int64_t(4) << 20;

// The weight-gradient tiles are summed for this many rows at once (several steps' batches): the
// tiles are read and written once per sum, and the rows' gradients still fit a core's L2.
// Measured (T=100 B=64, backward in-loop against after-loop): every step 0.95 at H=256 and
// 1.05 at H=512; 4 steps (256 rows) 0.89 and 0.97; 8 steps 0.94 and 1.02.
constexpr int64_t kRowsPerSum = 256;

// The buffers of a team backward's in-loop gradients, shared by its threads: dx [T, B, I],
// dW_ih [G, I], dW_hh [G, P] and W_ih's column panels (each thread packs those of its own
// columns of dx). Absent (present() false) without the inputs or when the tiles would not fit.
template <typename T> class LoopGradients {
 public:
  static constexpr int64_t L = Simd<T>::lanes;

  LoopGradients(const LoopInputs& in, int64_t G, int workers, const at::TensorOptions& opts)
      : in_(in), G_(G), I_(in.present() ? in.x.size(2) : 0), P_(in.present() ? in.h_in.size(2) : 0),
        input_blocks_((I_ + L - 1) / L),
        present_(in.present() && G * (I_ + P_) * int64_t(sizeof(T)) / workers <= kLoopGradientBytes) {
    if (!present_) return;
    dx = in.dx_out.defined() ? in.dx_out : at::empty({in.x.size(0), in.x.size(1), I_}, opts);
    panels_ = pooled_empty<T>({input_blocks_ * G * L}, opts);
    dw_ih = at::empty({G, I_}, opts);
    dw_hh = at::empty({G, P_}, opts);
  }

  bool present() const { return present_; }
  // The weight-gradient sums run every this many steps (see Thread::add_weights).
  int64_t steps_per_sum() const { return std::max<int64_t>(1, kRowsPerSum / in_.x.size(1)); }
  int64_t input_blocks() const { return input_blocks_; }
  std::vector<Tensor> results() const { return {dx, dw_ih, dw_hh}; }

  // One thread's part: its unit blocks' weight-gradient rows and its blocks of dx's columns.
  class Thread {
   public:
    Thread(const LoopGradients& all, const Slice& units, const Slice& inputs, int64_t H, int64_t gates)
        : all_(all), inputs_(inputs), ih_(units, H, gates, all.present_ ? all.I_ : 0),
          hh_(units, H, gates, all.present_ ? all.P_ : 0) {
      if (all.present_) pack_column_panels(all.in_.w_ih.template data_ptr<T>(), all.G_, all.I_, inputs.first,
                                            inputs.last, all.panels_.template data_ptr<T>());
    }

    // The weight-gradient sums of steps [t, t + S) once every S = kRowsPerSum / B steps (at each
    // t that is a multiple of S; the loop runs backward in time, so those steps are done): d_in and
    // d_rec point at step t of [T, B, G] buffers of the gradients of the input's part of the
    // gates and of the recurrent part (the same for the LSTM; for the GRU two, since its n gate
    // scales the recurrent part by r), of which the thread reads its own columns. S steps at
    // once read and write the tiles once for S * B rows instead of once per step.
    void add_weights(const T* d_in, const T* d_rec, int64_t t) {
      const int64_t S = all_.steps_per_sum();
      if (t % S != 0) return;
      const Tensor& x = all_.in_.x;
      const int64_t steps = std::min(S, x.size(0) - t), B = x.size(1), G = all_.G_;
      const LoopInputs& in = all_.in_;
      if (!in.reversed && x.stride(0) == B * x.stride(1)) {   // the steps' rows are evenly spaced
        ih_.add(d_in, G, x.template data_ptr<T>() + t * x.stride(0), x.stride(1), steps * B);
      } else {                                    // a batch_first view, or x read backward: step by step
        for (int64_t s = 0; s < steps; ++s) {
          ih_.add(d_in + s * B * G, G, x.template data_ptr<T>() + in.x_step(t + s) * x.stride(0), x.stride(1), B);
        }
      }
      hh_.add(d_rec, G, step_ptr<T>(all_.in_.h_in, t), all_.P_, steps * B);
    }

    // The thread's columns of dx_t = d_t W_ih (d_t: d_in above) for the n rows in rows_of (the
    // step's active ones), zero in the others. a_packed: the thread's [B, G] buffer for rows
    // with gaps.
    void input_columns(const T* d, int64_t t, const int64_t* rows_of, int64_t n, T* a_packed) const {
      T* dx_t = step_ptr<T>(all_.dx, all_.in_.x_step(t));
      const int64_t B = all_.dx.size(1), c0 = inputs_.first * L, nc = std::min(all_.I_, inputs_.last * L) - c0;
      if (nc <= 0) return;
      for_inactive_rows(B, rows_of, n, [&](int64_t b) { std::memset(dx_t + b * all_.I_ + c0, 0, sizeof(T) * nc); });
      add_product_columns<T, false>(d, rows_of, n, all_.G_, all_.panels_.template data_ptr<T>(), inputs_.first,
                                    inputs_.last, all_.I_, nullptr, a_packed, dx_t);
    }

    // Writes the thread's rows of dW_ih and dW_hh (after its last step).
    void write() const {
      ih_.write(all_.dw_ih.template data_ptr<T>());
      hh_.write(all_.dw_hh.template data_ptr<T>());
    }

   private:
    const LoopGradients& all_;
    Slice inputs_;
    GradientTiles<T> ih_, hh_;
  };

  Tensor dx, dw_ih, dw_hh;

 private:
  const LoopInputs& in_;
  int64_t G_, I_, P_, input_blocks_;
  bool present_;
  Tensor panels_;
};

}  // namespace lstmkit
