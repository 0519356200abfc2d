// Matrix-vector products for a batch of one or a few rows (the streaming step): the dot
// products of up to one vector's worth of weight rows with one vector. Each row's products
// go into a vector of partial sums for the whole k loop; a transposing reduction then turns
// those L vectors into one whose lane j is row j's dot product. (A horizontal sum per row, as
// `omp simd reduction` compiles without -ffast-math, adds the lanes one at a time in order:
// at k = 160 it took more time than the multiplies.)
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "panel_gemm.h"

namespace lstmkit {

// The reduction leaves row bit_reverse(i)'s sum in lane i, so accumulator i takes that row.
constexpr int bit_reverse(int i, int lanes) {
  int r = 0;
  for (int bit = 1; bit < lanes; bit <<= 1, i >>= 1) r = (r << 1) | (i & 1);
  return r;
}

template <typename T>
class RowDots {
 public:
  using V = typename Simd<T>::vec;
  static constexpr int L = static_cast<int>(Simd<T>::lanes);

  RowDots() { clear(); }

  void clear() {
    for (int i = 0; i < L; ++i) acc_[i] = V{};
  }

  // Adds <w[j * ld : j * ld + k], v[0 : k]> to row j's sum, j < n (n <= L). Accumulators past
  // n read row n - 1 again rather than past the weight; their lanes are not used.
  void add(const T* w, int64_t ld, int n, const T* v, int64_t k) {
    const T* rows[L];
    for (int i = 0; i < L; ++i) rows[i] = w + std::min(bit_reverse(i, L), n - 1) * ld;
    int64_t q = 0;
    for (; q + L <= k; q += L) {
      V vq;
      std::memcpy(&vq, v + q, sizeof(V));
#pragma GCC unroll 16
      for (int i = 0; i < L; ++i) {
        V wq;
        std::memcpy(&wq, rows[i] + q, sizeof(V));
        acc_[i] += wq * vq;
      }
    }
    for (; q < k; ++q) {
      for (int i = 0; i < L; ++i) acc_[i][0] += rows[i][q] * v[q];
    }
  }

  // Lane j: row j's dot product (the sum of accumulator bit_reverse(j)'s lanes).
  V sums() const {
    V level[L];
    for (int i = 0; i < L; ++i) level[i] = acc_[i];
    fold_down<L / 2>(level);
    return level[0];
  }

 private:
  using Index = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;
  typedef Index IndexVec __attribute__((vector_size(kVecBytes)));

  // In each group of 2S lanes: a's two halves summed, then b's (a shuffle of the pair each).
  template <int S>
  static V fold(V a, V b) {
    IndexVec lo, hi;
    for (int g = 0; g < L; g += 2 * S) {
      for (int j = 0; j < S; ++j) {
        lo[g + j] = g + j;
        hi[g + j] = g + S + j;
        lo[g + S + j] = L + g + j;
        hi[g + S + j] = L + g + S + j;
      }
    }
    return __builtin_shuffle(a, b, lo) + __builtin_shuffle(a, b, hi);
  }

  // 2S vectors of partial sums -> S, down to one.
  template <int S>
  static void fold_down(V* level) {
    for (int p = 0; p < S; ++p) level[p] = fold<S>(level[2 * p], level[2 * p + 1]);
    if constexpr (S > 1) fold_down<S / 2>(level);
  }

  V acc_[L];
};

}  // namespace lstmkit
