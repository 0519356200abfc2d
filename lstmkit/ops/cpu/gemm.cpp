// Row-major GEMM against a weight used for every step. Where it runs was measured on the
// project's 2-core AMD machine (T=100, B=64, per-step GEMMs of a 100-step loop, 2 threads):
// oneDNN's matmul 82 ms at H=512 against 86 for MKL's sgemm and 109 for MKL's packed sgemm
// (packing did not pay at any size tried), so: oneDNN from 4M multiply-adds, MKL's sgemm (the
// copy inside libtorch_cpu, weak symbols) below, plain loops for up to 4 rows, at::mm where
// neither library is found.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include "common.h"
#include "row_dots.h"

extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
            const int*, const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

namespace lstmkit {
namespace {
constexpr int64_t kSmallBatch = 4;                 // rows up to which plain loops beat a BLAS call
constexpr int64_t kOneDnnMinWork = int64_t(1) << 22;  // multiply-adds from which oneDNN wins

// oneDNN's matmul, as torch registers it (mkldnn::_linear_pointwise).
const c10::OperatorHandle* onednn_linear() {
  static const std::optional<c10::OperatorHandle> op =
      c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
  return op ? &*op : nullptr;
}

// Column-major BLAS computing the row-major C = A @ op(W) + beta C as C^T = op(W)^T A^T.
template <typename T> bool blas(bool trans, int m, int n, int k, const T* w, const T* a, int lda, T beta, T* c,
                                int ldc) {
  const char* tw = trans ? "T" : "N";
  int ldw = trans ? k : n;
  T one = 1;
  if constexpr (std::is_same_v<T, float>) {
    if (!sgemm_) return false;
    sgemm_(tw, "N", &n, &m, &k, &one, w, &ldw, a, &lda, &beta, c, &ldc);
  } else {
    if (!dgemm_) return false;
    dgemm_(tw, "N", &n, &m, &k, &one, w, &ldw, a, &lda, &beta, c, &ldc);
  }
  return true;
}
}  // namespace

bool mkl_gemm_available() { return sgemm_ != nullptr && dgemm_ != nullptr; }
bool onednn_gemm_available() { return onednn_linear() != nullptr; }

template <typename T>
WeightGemm<T>::WeightGemm(const Tensor& w, bool trans, int64_t m)
    : w_(w.contiguous()), trans_(trans), m_(m) {
  n_ = trans ? w_.size(0) : w_.size(1);
  k_ = trans ? w_.size(1) : w_.size(0);
  if (w_.scalar_type() == at::kBFloat16) {
    TORCH_CHECK((std::is_same_v<T, float>), "a bfloat16 weight needs float32 activations");
    bf16_ = true;
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (m_ * n_ * k_ >= kOneDnnMinWork && onednn_linear()) {
      w_nk_ = trans ? w_ : w_.t().contiguous();
      return;
    }
  }
}

// For a batch of a few rows (streaming, B = 1) BLAS's call overhead outweighs the work: plain
// loops that vectorise over k (dot products against W's rows) or over n (rows of W scaled).
template <typename T>
void small_batch(bool trans, int64_t m, int64_t n, int64_t k, const T* w, const T* a, int64_t lda, T beta, T* c,
                 int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    const T* ar = a + i * lda;
    T* cr = c + i * ldc;
    if (beta == T(0)) {
      for (int64_t j = 0; j < n; ++j) cr[j] = T(0);
    } else if (beta != T(1)) {
      for (int64_t j = 0; j < n; ++j) cr[j] *= beta;
    }
    if (trans) {                                  // W [n, k]: c_j += <a, W_j>, a vector's worth of rows at a time
      constexpr int64_t L = RowDots<T>::L;
      for (int64_t j = 0; j < n; j += L) {
        const int rows = static_cast<int>(std::min(L, n - j));
        RowDots<T> dots;
        dots.add(w + j * k, k, rows, ar, k);
        const auto sums = dots.sums();
        for (int r = 0; r < rows; ++r) cr[j + r] += sums[r];
      }
    } else {                                      // W [k, n]: c += a_q W_q
      for (int64_t q = 0; q < k; ++q) {
        const T aq = ar[q];
        const T* wr = w + q * n;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) cr[j] += aq * wr[j];
      }
    }
  }
}

// float <-> bfloat16 on the bits, in loops that vectorise (rounding to nearest even; the
// activations here are finite).
inline uint16_t to_bf16_bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}
inline float from_bf16_bits(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof(v));
  return v;
}

template <typename T> void WeightGemm<T>::run_bf16(const T* a, int64_t lda, T beta, T* c, int64_t ldc) const {
  if constexpr (std::is_same_v<T, float>) {
    Tensor A = at::empty({m_, k_}, w_.options());
    auto* ap = reinterpret_cast<uint16_t*>(A.data_ptr());
    for (int64_t i = 0; i < m_; ++i) {
#pragma omp simd
      for (int64_t q = 0; q < k_; ++q) ap[i * k_ + q] = to_bf16_bits(a[i * lda + q]);
    }
    Tensor C = at::mm(A, trans_ ? w_.t() : w_);      // oneDNN's bf16 GEMM
    const auto* cp = reinterpret_cast<const uint16_t*>(C.data_ptr());
    for (int64_t i = 0; i < m_; ++i) {
      float* cr = c + i * ldc;
      const uint16_t* src = cp + i * n_;
      if (beta == 0.0f) {
#pragma omp simd
        for (int64_t j = 0; j < n_; ++j) cr[j] = from_bf16_bits(src[j]);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < n_; ++j) cr[j] = beta * cr[j] + from_bf16_bits(src[j]);
      }
    }
  }
}

template <typename T> void WeightGemm<T>::run_onednn(const T* a, int64_t lda, T beta, T* c, int64_t ldc) const {
  Tensor A = at::from_blob(const_cast<T*>(a), {m_, k_}, {lda, 1}, w_.options());
  torch::jit::Stack stack{A, w_nk_, c10::IValue(), std::string("none"), c10::List<std::optional<c10::Scalar>>(),
                          c10::IValue()};
  onednn_linear()->callBoxed(&stack);
  Tensor out = stack[0].toTensor();
  const T* src = out.data_ptr<T>();
  for (int64_t i = 0; i < m_; ++i) {
    T* cr = c + i * ldc;
    const T* sr = src + i * n_;
    if (beta == T(0)) {
      std::memcpy(cr, sr, sizeof(T) * n_);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n_; ++j) cr[j] = beta * cr[j] + sr[j];
    }
  }
}

template <typename T> void WeightGemm<T>::run(const T* a, int64_t lda, T beta, T* c, int64_t ldc) const {
  if (w_nk_.defined()) {
    run_onednn(a, lda, beta, c, ldc);
    return;
  }
  if (bf16_) {
    run_bf16(a, lda, beta, c, ldc);
    return;
  }
  if (m_ <= kSmallBatch) {
    small_batch<T>(trans_, m_, n_, k_, w_.data_ptr<T>(), a, lda, beta, c, ldc);
    return;
  }
  if (blas<T>(trans_, m_, n_, k_, w_.data_ptr<T>(), a, lda, beta, c, ldc)) return;
  auto opts = w_.options();
  Tensor A = at::from_blob(const_cast<T*>(a), {m_, k_}, {lda, 1}, opts);
  Tensor C = at::from_blob(c, {m_, n_}, {ldc, 1}, opts);
  Tensor W = trans_ ? w_.t() : w_;
  if (beta == T(0)) {
    at::mm_out(C, A, W);
  } else {
    C.mul_(beta).addmm_(A, W);
  }
}

template class WeightGemm<float>;
template class WeightGemm<double>;

}  // namespace lstmkit
