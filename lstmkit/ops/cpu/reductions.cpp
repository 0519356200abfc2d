// Sums over all rows (every step and batch row) of a gradient, or of its product with a saved
// activation: the bias, peephole and layer-norm gain gradients. One pass, no [T, B, N]
// temporary for the product (each would be a fresh allocation, paid in page faults), rows split
// among the threads, sums in double.
#include "common.h"

namespace lstmkit {
namespace {

template <typename T> Tensor sum_rows_of(const Tensor& a, const Tensor& b) {
  const int64_t N = a.size(0), C = a.size(1), lda = a.stride(0), ldb = b.defined() ? b.stride(0) : 0;
  const T* pa = a.data_ptr<T>();
  const T* pb = b.defined() ? b.data_ptr<T>() : nullptr;
  const int threads = at::get_num_threads();
  std::vector<double> partial(size_t(threads) * C, 0.0);
  at::parallel_for(0, N, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, C)), [&](int64_t r0, int64_t r1) {
    double* acc = partial.data() + at::get_thread_num() * C;
    for (int64_t r = r0; r < r1; ++r) {
      const T* ar = pa + r * lda;
      if (pb) {
        const T* br = pb + r * ldb;
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) acc[j] += double(ar[j]) * br[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) acc[j] += ar[j];
      }
    }
  });
  Tensor out = at::empty({C}, a.options());
  T* po = out.data_ptr<T>();
  for (int64_t j = 0; j < C; ++j) {
    double s = 0;
    for (int k = 0; k < threads; ++k) s += partial[k * C + j];
    po[j] = T(s);
  }
  return out;
}

}  // namespace

// a [N, C] (and b [N, C]) with contiguous rows, possibly column slices of wider tensors.
Tensor sum_rows(Tensor a, OptTensor b) {
  TORCH_CHECK(a.dim() == 2 && a.stride(1) == 1, "sum_rows: expected a [N, C] tensor with contiguous rows");
  Tensor bb = b && b->defined() ? *b : Tensor();
  if (bb.defined()) {
    TORCH_CHECK(bb.sizes() == a.sizes() && bb.stride(1) == 1 && bb.scalar_type() == a.scalar_type(),
                "sum_rows: expected b of a's shape and dtype with contiguous rows, got ", bb.sizes());
  }
  return AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "sum_rows", [&] { return sum_rows_of<scalar_t>(a, bb); });
}

}  // namespace lstmkit
