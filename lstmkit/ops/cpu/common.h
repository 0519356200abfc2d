// What the fused LSTM-family loops share: activations that vectorise, row-major GEMM against a
// weight (gemm.cpp: oneDNN, MKL or plain loops), strided reads of broadcast masks, and a
// row-parallel loop.
#pragma once

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "panel_gemm.h"
#include "workspace.h"

namespace lstmkit {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

// ------------------------------------------------------------------ activations

enum class Act { Sigmoid, Tanh, Relu, HardSigmoid, Linear };

inline Act parse_act(const std::string& name) {
  if (name == "sigmoid") return Act::Sigmoid;
  if (name == "tanh") return Act::Tanh;
  if (name == "relu") return Act::Relu;
  if (name == "hard_sigmoid") return Act::HardSigmoid;
  if (name == "linear") return Act::Linear;
  TORCH_CHECK(false, "unknown activation '", name, "'");
}

// exp in float with Cephes' polynomial (about 1 ulp), written so that GCC vectorises it (no
// calls, no branches: clamps are selects, floor is a shifted truncation of a positive number):
// exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2.
inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // x / ln 2 lies in [-125.6, 127]: shifted by 127.5 it is positive, so truncation is floor.
  int32_t ki = static_cast<int32_t>(x * 1.44269504088896341f + 127.5f) - 127;
  float k = static_cast<float>(ki);
  float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (ki + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}
inline double exp_fast(double x) { return std::exp(x); }

template <typename T> inline T sigmoid(T x) { return T(1) / (T(1) + exp_fast(-x)); }
template <typename T> inline T tanh_fast(T x) {
  T e = exp_fast(T(-2) * std::fabs(x));
  T t = (T(1) - e) / (T(1) + e);
  return x < T(0) ? -t : t;
}

// y = f(y) in place over n contiguous values.
template <typename T> inline void activate(Act act, T* y, int64_t n) {
  switch (act) {
    case Act::Sigmoid:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) y[j] = sigmoid(y[j]);
      break;
    case Act::Tanh:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) y[j] = tanh_fast(y[j]);
      break;
    case Act::Relu:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) y[j] = y[j] > T(0) ? y[j] : T(0);
      break;
    case Act::HardSigmoid:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        T v = y[j] / T(6) + T(0.5);
        y[j] = v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
      }
      break;
    case Act::Linear:
      break;
  }
}

// f'(a) written from y = f(a), as activations.py does.
template <typename T> inline T grad_from_output(Act act, T y) {
  switch (act) {
    case Act::Sigmoid: return y * (T(1) - y);
    case Act::Tanh: return T(1) - y * y;
    case Act::Relu: return y > T(0) ? T(1) : T(0);
    case Act::HardSigmoid: return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
    case Act::Linear: return T(1);
  }
  return T(1);
}

// d[j] *= f'(from y[j]) over n values; the switch sits outside the loop so the loop vectorises.
template <typename T> inline void times_grad(Act act, T* d, const T* y, int64_t n) {
  switch (act) {
    case Act::Sigmoid:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] *= y[j] * (T(1) - y[j]);
      break;
    case Act::Tanh:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] *= T(1) - y[j] * y[j];
      break;
    default:
      for (int64_t j = 0; j < n; ++j) d[j] *= grad_from_output(act, y[j]);
  }
}

// ------------------------------------------------------------------ layer norm over a row

constexpr double kLayerNormEps = 1e-5;

// sum_j term(v[j]) over j < n, in double and in vectors of doubles: term takes a vector of
// doubles or a double (a generic lambda). Written out because GCC leaves the float -> double
// `omp simd` reductions scalar in the team loops, one dependent add per value.
template <typename T, typename Term>
inline double sum_in_double(const T* v, int64_t n, Term term) {
  using D = Simd<double>::vec;
  constexpr int64_t L = Simd<double>::lanes;
  typedef T Part __attribute__((vector_size(L * sizeof(T))));   // L values of T, converted to D
  D acc0{}, acc1{};
  int64_t j = 0;
  for (; j + 2 * L <= n; j += 2 * L) {
    Part a, b;
    std::memcpy(&a, v + j, sizeof(Part));
    std::memcpy(&b, v + j + L, sizeof(Part));
    acc0 += term(__builtin_convertvector(a, D));
    acc1 += term(__builtin_convertvector(b, D));
  }
  double sum = 0;
  for (; j < n; ++j) sum += term(double(v[j]));
  const D acc = acc0 + acc1;
  for (int64_t i = 0; i < L; ++i) sum += acc[i];
  return sum;
}

// (sum_j (v_j - shift), sum_j (v_j - shift)^2) over j < n in double, one pass, in vectors like
// sum_in_double. With a shift near the mean (any of the values will do) the variance that
// follows from the two sums keeps its digits: the cancellation is only of the shift's distance.
template <typename T>
inline std::pair<double, double> shifted_sums_in_double(const T* v, int64_t n, double shift) {
  using D = Simd<double>::vec;
  constexpr int64_t L = Simd<double>::lanes;
  typedef T Part __attribute__((vector_size(L * sizeof(T))));
  D acc_s{}, acc_q{};
  int64_t j = 0;
  for (; j + L <= n; j += L) {
    Part part;
    std::memcpy(&part, v + j, sizeof(Part));
    const D d = __builtin_convertvector(part, D) - shift;
    acc_s += d;
    acc_q += d * d;
  }
  double s = 0, q = 0;
  for (; j < n; ++j) {
    const double d = double(v[j]) - shift;
    s += d;
    q += d * d;
  }
  for (int64_t i = 0; i < L; ++i) {
    s += acc_s[i];
    q += acc_q[i];
  }
  return {s, q};
}

// (sum_j d_j gain_j, sum_j d_j gain_j hat_j) over j < n in double, in vectors like sum_in_double:
// the two sums of a layer norm's backward.
template <typename T>
inline std::pair<double, double> gain_sums_in_double(const T* d, const T* gain, const T* hat, int64_t n) {
  using D = Simd<double>::vec;
  constexpr int64_t L = Simd<double>::lanes;
  typedef T Part __attribute__((vector_size(L * sizeof(T))));
  auto load = [](const T* p) {
    Part v;
    std::memcpy(&v, p, sizeof(Part));
    return __builtin_convertvector(v, D);
  };
  D acc_d{}, acc_dh{};
  int64_t j = 0;
  for (; j + L <= n; j += L) {
    const D dg = load(d + j) * load(gain + j);
    acc_d += dg;
    acc_dh += dg * load(hat + j);
  }
  double sum_d = 0, sum_dh = 0;
  for (; j < n; ++j) {
    const double dg = double(d[j]) * gain[j];
    sum_d += dg;
    sum_dh += dg * hat[j];
  }
  for (int64_t i = 0; i < L; ++i) {
    sum_d += acc_d[i];
    sum_dh += acc_dh[i];
  }
  return {sum_d, sum_dh};
}

// hat = (v - mean) * rstd over n values; returns rstd. The sums run in double: layer norm over
// few units is ill-conditioned, and float sums there lose digits that autograd's own float32
// result keeps.
template <typename T> inline T normalise_row(const T* v, T* hat, int64_t n) {
  const double mean = sum_in_double(v, n, [](auto x) { return x; }) / n;
  const double sq = sum_in_double(v, n, [mean](auto x) { return (x - mean) * (x - mean); });
  const double rstd = 1.0 / std::sqrt(sq / n + kLayerNormEps);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) hat[j] = T((v[j] - mean) * rstd);
  return T(rstd);
}

// out = rstd * (d - mean(d) - hat * mean(d * hat)), with d = d_hat_in[j] * gain[j]: the sums in
// double, the terms in T. For a single unit d - mean(d) still cancels exactly (both are the
// same rounded product) and hat is 0.
template <typename T>
inline void normalise_row_backward(const T* d_hat_in, const T* gain, const T* hat, T rstd, T* out, int64_t n) {
  const auto [sum_d, sum_dh] = gain_sums_in_double(d_hat_in, gain, hat, n);
  const T mean_d = T(sum_d / n), mean_dh = T(sum_dh / n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] = rstd * (d_hat_in[j] * gain[j] - mean_d - hat[j] * mean_dh);
}

// ------------------------------------------------------------------ masks

// A [T, B, N] mask that may be a broadcast view (stride 0): element (t, b, j) by strides.
template <typename T> struct Mask {
  const T* data = nullptr;
  int64_t st = 0, sb = 0, sj = 0;
  explicit Mask(const OptTensor& m) {
    if (m && m->defined()) {
      data = m->data_ptr<T>();
      st = m->stride(0); sb = m->stride(1); sj = m->stride(2);
    }
  }
  bool present() const { return data != nullptr; }
  T at(int64_t t, int64_t b, int64_t j) const { return data[t * st + b * sb + j * sj]; }
};

// A state's next value for units u0 .. u0 + n of row b: k * prev + (1 - k) * fresh(j), k the
// keep mask (zoneout's draw, 1 past a sequence's end), or fresh(j) without one.
template <typename T, typename Fresh>
inline void next_state(const Mask<T>& keep, int64_t t, int64_t b, int64_t u0, int64_t n, const T* prev, Fresh fresh,
                       T* state) {
  if (keep.present()) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const T k = keep.at(t, b, u0 + j);
      state[j] = k * prev[j] + (T(1) - k) * fresh(j);
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) state[j] = fresh(j);
  }
}

// From n values of a new state h: the output y = h * out_scale (0 past a sequence's end), and
// the next step's recurrent input h * rm when recurrent dropout is on (h_in not null).
template <typename T>
inline void emit_rows(const T* h, T out_scale, T* y, const T* rm, T* h_in, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] = h[j] * out_scale;
  if (h_in) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) h_in[j] = h[j] * rm[j];
  }
}

template <typename T> inline const T* ptr_or_null(const OptTensor& t) {
  return (t && t->defined()) ? t->data_ptr<T>() : nullptr;
}

// Step t of a contiguous [T, ...] tensor by pointer arithmetic (no per-step tensor views: at
// small sizes a dispatcher call per step costs more than the step itself).
// Step t of a [T, B, N] tensor as base + t * step; from its end when reversed (the loop's step t
// is the tensor's T - 1 - t); {null, 0} without the tensor.
template <typename T> inline std::pair<const T*, int64_t> step_walk(const OptTensor& v, bool reversed) {
  if (!v || !v->defined()) return {nullptr, 0};
  const int64_t n = v->stride(0);
  const T* p = v->template data_ptr<T>();
  return reversed ? std::make_pair(p + (v->size(0) - 1) * n, -n) : std::make_pair(p, n);
}

template <typename T> inline T* step_ptr(const Tensor& x, int64_t t) { return x.data_ptr<T>() + t * x.stride(0); }
template <typename T> inline T* step_ptr(const OptTensor& x, int64_t t) {
  return (x && x->defined()) ? step_ptr<T>(*x, t) : nullptr;
}

// A [n, rows, cols] buffer addressed by slot, from the thread's pool (workspace.h).
template <typename T> struct Slots {
  Tensor tensor;
  T* base = nullptr;
  int64_t stride = 0;
  Slots() = default;
  Slots(int64_t n, int64_t rows, int64_t cols, const at::TensorOptions& opts)
      : tensor(pooled_buffer<T>(n * rows * cols, opts).view({n, rows, cols})), base(tensor.data_ptr<T>()),
        stride(rows * cols) {}
  T* operator[](int64_t s) const { return base ? base + s * stride : nullptr; }
};

// ------------------------------------------------------------------ argument checks

// Every tensor on the CPU, of the first one's dtype; the dense ones contiguous (masks may be
// broadcast views, read by their strides).
inline void check_inputs(const char* fn, const Tensor& first, std::initializer_list<const Tensor*> dense,
                         std::initializer_list<const OptTensor*> optional) {
  auto check = [&](const Tensor& t) {
    TORCH_CHECK(t.device().is_cpu(), fn, ": expected CPU tensors, got one on ", t.device());
    TORCH_CHECK(t.scalar_type() == first.scalar_type(), fn, ": expected dtype ", first.scalar_type(), ", got ",
                t.scalar_type());
  };
  check(first);
  TORCH_CHECK(first.is_contiguous(), fn, ": expected a contiguous ", first.sizes(), " tensor");
  for (const Tensor* t : dense) {
    // a bfloat16 weight with float activations is the bf16 inference path
    bool bf16_weight = t->scalar_type() == at::kBFloat16 && first.scalar_type() == at::kFloat && t->dim() == 2;
    if (!bf16_weight) check(*t);
    TORCH_CHECK(t->is_contiguous(), fn, ": expected contiguous tensors, got strides ", t->strides());
  }
  for (const OptTensor* t : optional) {
    if (*t && (*t)->defined()) check(**t);
  }
}

// The masks the loops read for every step, row and unit: [T, B, N] by strides (broadcast views
// are fine, cpu/__init__.py expands them), and the recurrent mask as a dense [B, N]. A smaller
// tensor would be read past its end, so the shapes are checked here.
inline void check_masks(const char* fn, int64_t T, int64_t B, const OptTensor& rmask, int64_t P,
                        std::initializer_list<std::pair<const OptTensor*, int64_t>> step_masks) {
  if (rmask && rmask->defined()) {
    TORCH_CHECK(rmask->numel() == B * P && rmask->is_contiguous(), fn, ": expected a contiguous [", B, ", ", P,
                "] recurrent mask, got ", rmask->sizes());
  }
  for (const auto& [m, N] : step_masks) {
    if (!*m || !(*m)->defined()) continue;
    TORCH_CHECK((*m)->dim() == 3 && (*m)->size(0) == T && (*m)->size(1) == B && (*m)->size(2) == N, fn,
                ": expected a [", T, ", ", B, ", ", N, "] mask, got ", (*m)->sizes());
  }
}

// Where a loop writes its output in place of a tensor of its own: [T, B, P] like x's first two
// dimensions, its last one contiguous, sharing no memory with x or with itself.
inline void check_output(const char* fn, const OptTensor& out, const Tensor& x, int64_t P) {
  if (!out || !out->defined()) return;
  TORCH_CHECK(out->dim() == 3 && out->size(0) == x.size(0) && out->size(1) == x.size(1) && out->size(2) == P &&
                  out->stride(2) == 1,
              fn, ": expected out [", x.size(0), ", ", x.size(1), ", ", P,
              "] with a contiguous last dimension, got sizes ", out->sizes(), " and strides ", out->strides());
  TORCH_CHECK(out->device().is_cpu() && out->scalar_type() == x.scalar_type(), fn, ": expected out on the CPU in ",
              x.scalar_type(), ", got ", out->scalar_type(), " on ", out->device());
  at::assert_no_internal_overlap(*out);
  at::assert_no_overlap(*out, x);
}

// ------------------------------------------------------------------ rows in parallel

template <typename F> inline void for_rows(int64_t rows, int64_t work_per_row, const F& f) {
  int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_row));
  at::parallel_for(0, rows, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(b);
  });
}

// ------------------------------------------------------------------ GEMM

// C[M, N] = A[M, K] @ op(W) + beta * C, row-major, where op(W) = W^T for W [N, K] (trans) or
// W for W [K, N]; gemm.cpp says which library runs it. A bfloat16 weight with float A and C is
// bf16 inference: A is rounded to bf16 and the product runs in oneDNN's bf16 GEMM (MKL's runs at
// fp32 speed on CPUs other than Intel's).
template <typename T> class WeightGemm {
 public:
  WeightGemm(const Tensor& w, bool trans, int64_t m);
  void run(const T* a, int64_t lda, T beta, T* c, int64_t ldc) const;

 private:
  void run_bf16(const T* a, int64_t lda, T beta, T* c, int64_t ldc) const;
  void run_onednn(const T* a, int64_t lda, T beta, T* c, int64_t ldc) const;
  Tensor w_, w_nk_;   // w_nk_: the weight as [N, K] for oneDNN's linear
  bool trans_;
  bool bf16_ = false;
  int64_t m_, n_, k_;
};

}  // namespace lstmkit
