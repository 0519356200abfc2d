// The GRU's gates and state blend for one batch row and a range of units, forward and
// backward: what both GRU time loops run after a step's recurrent GEMM (gru_steps.cpp: a GEMM
// per step, then rows in parallel; gru_team.cpp: threads that own units for the whole
// sequence). Equations and shapes are in lstmkit/ops/gru_steps.py; gate rows are r, z, n.
#pragma once

#include "common.h"

namespace lstmkit {

template <typename T> struct GruForward {
  int64_t G, H;
  Act act, ract;
  const T *bh, *rm;                 // b_hh [3H] and the recurrent mask [B, H], or null
  Mask<T> keep_h, out_mask;
  // per step
  int64_t t;
  T* a;                             // [B, G] W_ih x + b_ih in, the gates r, z, n out (in place)
  const T* gh;                      // [B, G] W_hh h_in
  T* gh_n;                          // [B, H] out: W_hn h_in + b_hn
  const T* h;                       // [B, H] state before the step
  T* h_next;                        // [B, H]
  T* y;                             // B rows y_row apart (H, or 2H in a bidirectional output)
  int64_t y_row;
  T* h_in_next;                     // [B, H] h_next * recurrent mask (team loop), or null

  // Row b past its sequence's end: state carried, output zero, zeros saved for backward.
  void carry(int64_t b, int64_t u0, int64_t n) const {
    for (int64_t g = 0; g < 3; ++g) std::memset(a + b * G + g * H + u0, 0, sizeof(T) * n);
    const int64_t o = b * H + u0;
    std::memset(gh_n + o, 0, sizeof(T) * n);
    std::memcpy(h_next + o, h + o, sizeof(T) * n);
    std::memset(y + b * y_row + u0, 0, sizeof(T) * n);
    if (h_in_next) {
      for (int64_t j = 0; j < n; ++j) h_in_next[o + j] = h_next[o + j] * rm[o + j];
    }
  }

  void units(int64_t b, int64_t u0, int64_t n) const {
    T* r = a + b * G + u0;
    T* z = r + H;
    T* nn = z + H;
    const T* ghr = gh + b * G + u0;
    const T* bhr = bh ? bh + u0 : nullptr;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      r[j] += ghr[j] + (bhr ? bhr[j] : T(0));
      z[j] += ghr[H + j] + (bhr ? bhr[H + j] : T(0));
    }
    activate(ract, r, n);
    activate(ract, z, n);
    T* gn = gh_n + b * H + u0;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      gn[j] = ghr[2 * H + j] + (bhr ? bhr[2 * H + j] : T(0));
      nn[j] += r[j] * gn[j];                      // n = phi(gx_n + r gh_n)
    }
    activate(act, nn, n);
    const T om = out_mask.present() ? out_mask.at(t, b, 0) : T(1);
    const int64_t o = b * H + u0;
    const T* hp = h + o;
    next_state(keep_h, t, b, u0, n, hp, [z, nn, hp](int64_t j) { return (T(1) - z[j]) * nn[j] + z[j] * hp[j]; },
               h_next + o);
    emit_rows(h_next + o, om, y + b * y_row + u0, rm ? rm + o : nullptr, h_in_next ? h_in_next + o : nullptr, n);
  }
};

template <typename T> struct GruBackward {
  int64_t B, G, H;
  Act act, ract;
  const T* dy;                      // [T, B, H] (step t at dy + t * dy_step) or null
  Mask<T> keep_h, out_mask;
  // per step
  int64_t t;
  const T *g, *gh_n, *h_prev;       // the step's gates [B, G], gh_n and h_prev [B, H]
  T *d_gx, *d_gh;                   // [B, G] out
  T* dh;                            // [B, H] dh_t in, its part that bypasses the gates out
  int64_t dy_step = 0;              // B * H, or -B * H read from its end (common.h's step_walk)

  void units(int64_t b, int64_t u0, int64_t n) const {
    const T* r = g + b * G + u0;
    const T* z = r + H;
    const T* nn = z + H;
    T* dr = d_gx + b * G + u0;
    T* dz = dr + H;
    T* dn = dz + H;
    const int64_t o = b * H + u0;
    const T* hp = h_prev + o;
    T* d = dh + o;
    const T om = out_mask.present() ? out_mask.at(t, b, 0) : T(1);
    if (dy) {
      const T* dyr = dy + t * dy_step + o;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] += dyr[j] * om;
    }
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      T k = keep_h.present() ? keep_h.at(t, b, u0 + j) : T(0);
      T d_new = d[j] * (T(1) - k);
      dn[j] = d_new * (T(1) - z[j]);              // h~ = (1 - z) n + z h_prev
      dz[j] = d_new * (hp[j] - nn[j]);
      d[j] = d[j] * k + d_new * z[j];
    }
    times_grad(act, dn, nn, n);
    times_grad(ract, dz, z, n);
    const T* gn = gh_n + o;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dr[j] = dn[j] * gn[j];
    times_grad(ract, dr, r, n);
    T* dgh = d_gh + b * G + u0;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      dgh[j] = dr[j];
      dgh[H + j] = dz[j];
      dgh[2 * H + j] = dn[j] * r[j];
    }
  }
};

}  // namespace lstmkit
