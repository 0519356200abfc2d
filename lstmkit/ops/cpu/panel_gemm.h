// The recurrent GEMM of the team loops (lstm_team.cpp): a few rows of A against a weight packed
// once per call into column panels, C[R][NV * L] = A[R][K] @ panel[K][NV * L], the R x NV
// vector sums held in registers for the whole K loop. Each thread packs the panels of the units
// it owns, so they stay in its core's cache from step to step; a library GEMM called per step
// reads the whole weight again each time and pays its call overhead on every step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace lstmkit {

#if defined(__AVX512F__)
constexpr int64_t kVecBytes = 64;
constexpr int64_t kPanelRows = 6;   // 6 rows x 4 vectors of sums: 24 of the 32 vector registers
#elif defined(__AVX__)
constexpr int64_t kVecBytes = 32;
constexpr int64_t kPanelRows = 3;   // 12 of the 16
#else
constexpr int64_t kVecBytes = 16;
constexpr int64_t kPanelRows = 3;
#endif
constexpr int64_t kPanelVecs = 4;   // at most 4 vectors a panel row: the four gates of a unit block

// The machine's widest vector of T (GCC/Clang vector extensions: the compiler picks the
// instructions for -march=native) and its number of lanes, which is also the unit block.
template <typename T> struct Simd {
  typedef T vec __attribute__((vector_size(kVecBytes)));
  static constexpr int64_t lanes = kVecBytes / sizeof(T);
};

// dst[0 .. n) = src[0 .. n), n <= one vector: a whole vector is one load and one store (a
// memcpy of a runtime size is a call into libc).
template <typename T> inline void copy_lanes(T* dst, const T* src, int64_t n) {
  if (n == Simd<T>::lanes) {
    std::memcpy(dst, src, sizeof(typename Simd<T>::vec));
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
  }
}

// How the kernel reads A[r][q] (r < R rows, q < k): row-major, rows `as` apart (Rows); packed
// k-major, a[q * R + r] (Packed); or R consecutive values of each of k rows `as` apart, a[q * as + r]
// (Columns: the transpose of a row-major block, as a weight gradient d^T v reads v).
enum class ALayout { Rows, Packed, Columns };

// Where the kernel reads the panel's NV vectors for step q: at panel + q * NV * L + v * L (a packed
// panel), or, with StridedPanel, at panel + q * ps + v * vs (vectors of a row-major tensor in place).
struct PanelStrides {
  int64_t ps, vs;
};

// out[r][v * L + j] = sum_q A[r][q] * panel_q[v][j], r < R, v < NV. (The layouts are template
// arguments: with runtime strides the row addresses no longer fit in registers beside the sums.)
// Accumulate adds the product to what out holds.
// Not inlined: inside a large loop GCC runs short of vector registers for the R x NV sums
// and reloads the panel's vectors from memory for every row's FMA; on its own the kernel
// keeps them in registers (measured: 80 % of its own speed when inlined).
template <typename T, int R, int NV, ALayout A, bool Accumulate, bool StridedPanel>
__attribute__((noinline)) void panel_product(const T* a, int64_t as, int64_t k, const T* panel, PanelStrides st,
                                             T* out) {
  using V = typename Simd<T>::vec;
  constexpr int64_t L = Simd<T>::lanes;
  const int64_t ps = StridedPanel ? st.ps : NV * L, vs = StridedPanel ? st.vs : L;
  V acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (Accumulate) {
        std::memcpy(&acc[r][v], out + (r * NV + v) * L, sizeof(V));
      } else {
        acc[r][v] = V{};
      }
    }
  }
  const T* w = panel;
  for (int64_t q = 0; q < k; ++q, w += ps) {
    V wv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(&wv[v], w + v * vs, sizeof(V));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const T s = A == ALayout::Packed ? a[q * R + r] : A == ALayout::Rows ? a[r * as + q] : a[q * as + r];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += s * wv[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) std::memcpy(out + (r * NV + v) * L, &acc[r][v], sizeof(V));
  }
}

template <typename T, int NV, ALayout A, bool Accumulate, bool StridedPanel>
inline void panel_rows(int64_t rows, const T* a, int64_t as, int64_t k, const T* panel, PanelStrides st, T* out) {
  switch (rows) {
    case 1: return panel_product<T, 1, NV, A, Accumulate, StridedPanel>(a, as, k, panel, st, out);
    case 2: return panel_product<T, 2, NV, A, Accumulate, StridedPanel>(a, as, k, panel, st, out);
    case 3: return panel_product<T, 3, NV, A, Accumulate, StridedPanel>(a, as, k, panel, st, out);
#if defined(__AVX512F__)
    case 4: return panel_product<T, 4, NV, A, Accumulate, StridedPanel>(a, as, k, panel, st, out);
    case 5: return panel_product<T, 5, NV, A, Accumulate, StridedPanel>(a, as, k, panel, st, out);
    case 6: return panel_product<T, 6, NV, A, Accumulate, StridedPanel>(a, as, k, panel, st, out);
#endif
  }
}

template <typename T, ALayout A, bool Accumulate, bool StridedPanel>
inline void panel_vectors(int64_t rows, int64_t nv, const T* a, int64_t as, int64_t k, const T* panel,
                          PanelStrides st, T* out) {
  switch (nv) {
    case 1: return panel_rows<T, 1, A, Accumulate, StridedPanel>(rows, a, as, k, panel, st, out);
    case 2: return panel_rows<T, 2, A, Accumulate, StridedPanel>(rows, a, as, k, panel, st, out);
    case 3: return panel_rows<T, 3, A, Accumulate, StridedPanel>(rows, a, as, k, panel, st, out);
    case 4: return panel_rows<T, 4, A, Accumulate, StridedPanel>(rows, a, as, k, panel, st, out);
  }
}

// out [rows][nv * L] for rows <= kPanelRows, nv <= kPanelVecs, against a packed panel; A as
// `Layout` says (Rows: rows `as` apart). Accumulate: out += the product.
template <typename T, ALayout Layout = ALayout::Rows, bool Accumulate = false>
inline void panel_gemm(int64_t rows, int64_t nv, const T* a, int64_t as, int64_t k, const T* panel, T* out) {
  panel_vectors<T, Layout, Accumulate, false>(rows, nv, a, as, k, panel, PanelStrides{0, 0}, out);
}

// out [rows][nv * L] += A^T-block times vectors read in place: for q < k, A[r][q] = a[q * as + r]
// and the panel's vectors at panel + q * ps + v * vs. The in-loop weight gradient d_t^T v_t.
template <typename T>
inline void add_strided_panel_gemm(int64_t rows, int64_t nv, const T* a, int64_t as, int64_t k, const T* panel,
                                   PanelStrides st, T* out) {
  panel_vectors<T, ALayout::Columns, true, true>(rows, nv, a, as, k, panel, st, out);
}

// Panels of the gate rows of W [gates * H, K] (row g * H + u holds gate g of unit u): for each
// unit block ub in [first, last), panel[q][g][j] = W[g * H + ub * L + j][q], zero past unit H,
// at dst + ub * K * gates * L. The product with h then gives a block's four gates side by side.
template <typename T>
void pack_gate_panels(const T* w, int64_t H, int64_t K, int64_t gates, int64_t first, int64_t last, T* dst) {
  constexpr int64_t L = Simd<T>::lanes;
  for (int64_t ub = first; ub < last; ++ub) {
    T* panel = dst + ub * K * gates * L;
    for (int64_t g = 0; g < gates; ++g) {
      for (int64_t j = 0; j < L; ++j) {
        const int64_t u = ub * L + j;
        const T* row = u < H ? w + (g * H + u) * K : nullptr;
        for (int64_t q = 0; q < K; ++q) panel[(q * gates + g) * L + j] = row ? row[q] : T(0);
      }
    }
  }
}

// Panels of the columns of W [K, N] in groups of up to kPanelVecs blocks of L columns: for the
// group of nv blocks from c0, panel[q][v][j] = W[q][(c0 + v) * L + j], zero past column N, at
// dst + c0 * K * L. Groups start at `first` and step by kPanelVecs up to `last`.
template <typename T>
void pack_column_panels(const T* w, int64_t K, int64_t N, int64_t first, int64_t last, T* dst) {
  constexpr int64_t L = Simd<T>::lanes;
  for (int64_t c0 = first; c0 < last; c0 += kPanelVecs) {
    const int64_t nv = std::min(kPanelVecs, last - c0);
    T* panel = dst + c0 * K * L;
    for (int64_t q = 0; q < K; ++q) {
      for (int64_t v = 0; v < nv; ++v) {
        for (int64_t j = 0; j < L; ++j) {
          const int64_t col = (c0 + v) * L + j;
          panel[(q * nv + v) * L + j] = col < N ? w[q * N + col] : T(0);
        }
      }
    }
  }
}

// out[b][c] += (A @ W)[b][c] * mask[b][c] (mask optional) for the columns c of the blocks
// [first, last) of W [K, N], packed by pack_column_panels, and the n rows b listed in `rows_of`;
// A [.., K] and out [.., N] row-major. A block of consecutive rows is read in place, rows K
// apart (six sequential streams); a block with gaps (rows past their end left out) is first
// copied k-major into `a_packed` ([n, K], the caller's). Add = false: out = the product.
template <typename T, bool Add = true>
void add_product_columns(const T* a, const int64_t* rows_of, int64_t n, int64_t K, const T* panels, int64_t first,
                         int64_t last, int64_t N, const T* mask, T* a_packed, T* out) {
  constexpr int64_t L = Simd<T>::lanes;
  if (first >= last) return;                     // a thread that owns no columns
  alignas(64) T sums[kPanelRows * kPanelVecs * L];
  auto consecutive = [&](int64_t r0, int64_t rows) { return rows_of[r0 + rows - 1] - rows_of[r0] == rows - 1; };
  for (int64_t r0 = 0; r0 < n; r0 += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, n - r0);
    if (consecutive(r0, rows)) continue;
    T* dst = a_packed + r0 * K;
    for (int64_t r = 0; r < rows; ++r) {
      const T* src = a + rows_of[r0 + r] * K;
      for (int64_t q = 0; q < K; ++q) dst[q * rows + r] = src[q];
    }
  }
  for (int64_t c0 = first; c0 < last; c0 += kPanelVecs) {
    const int64_t nv = std::min(kPanelVecs, last - c0);
    const T* panel = panels + c0 * K * L;
    for (int64_t r0 = 0; r0 < n; r0 += kPanelRows) {
      const int64_t rows = std::min(kPanelRows, n - r0);
      if (consecutive(r0, rows)) {
        panel_gemm<T>(rows, nv, a + rows_of[r0] * K, K, K, panel, sums);
      } else {
        panel_gemm<T, ALayout::Packed>(rows, nv, a_packed + r0 * K, 0, K, panel, sums);
      }
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t v = 0; v < nv; ++v) {
          const int64_t col = (c0 + v) * L, nc = std::min(L, N - col);
          const T* s = sums + (r * nv + v) * L;
          T* d = out + rows_of[r0 + r] * N + col;
          if (!Add) {
            copy_lanes(d, s, nc);
          } else if (mask) {
            const T* m = mask + rows_of[r0 + r] * N + col;
            for (int64_t j = 0; j < nc; ++j) d[j] += s[j] * m[j];
          } else {
            for (int64_t j = 0; j < nc; ++j) d[j] += s[j];
          }
        }
      }
    }
  }
}

}  // namespace lstmkit
