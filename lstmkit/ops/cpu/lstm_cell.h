// The LSTM family's cell update for one batch row and a range of hidden units, forward and
// backward: what both time loops run after a step's recurrent GEMM (lstm_steps.cpp: a GEMM per
// step, then rows in parallel; lstm_team.cpp: threads that own units for the whole sequence).
// The equations and shapes are in lstmkit/ops/lstm_steps.py. Units u0 .. u0 + n of a row are
// independent of the others except under layer norm, which the callers run with the whole row.
#pragma once

#include "common.h"
#include "team.h"

namespace lstmkit {

enum class Cell { Vanilla, Peephole, Cifg, LayerNorm };

inline Cell parse_cell(const std::string& name) {
  if (name == "vanilla") return Cell::Vanilla;
  if (name == "peephole") return Cell::Peephole;
  if (name == "cifg") return Cell::Cifg;
  if (name == "layernorm") return Cell::LayerNorm;
  TORCH_CHECK(false, "unknown cell '", name, "'");
}

// A gradient d of a state that zoneout or lengths blend (state = k * previous + (1 - k) * new):
// `through` gets the new value's part d (1 - k), and d keeps the previous state's part d k.
template <typename T>
inline void split_by_keep(const Mask<T>& keep, int64_t t, int64_t b, int64_t u0, int64_t n, T* d, T* through) {
  if (keep.present()) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      T k = keep.at(t, b, u0 + j);
      through[j] = d[j] * (T(1) - k);
      d[j] *= k;
    }
  } else {
    std::memcpy(through, d, sizeof(T) * n);
    std::memset(d, 0, sizeof(T) * n);
  }
}

// Step t forward. Gate rows hold i, f, g, o (cifg: f, g, o), each H wide.
template <typename T> struct CellForward {
  int64_t G, H, P;
  Cell cell;
  Act act, ract;
  bool proj;
  const T *peeps, *gain_c, *bias_c, *rm;        // null when absent
  Mask<T> keep_h, keep_c, out_mask;
  // per step
  int64_t t;
  T* a;                  // [B, G] pre-activations in, gate activations out (in place)
  const T *h, *c;        // state before the step, [B, P] and [B, H]
  T *h_next, *c_next;    // state after it (projection: h_next is left to the projection's GEMM)
  T* c_new;              // [B, H] the new cell before zoneout and lengths blend it
  T* phic;               // [B, H] phi(c_new), or phi(LN(c_new) gain + bias)
  T* h_core;             // [B, H] o * phic, projection only
  T* h_in_next;          // [B, P] h_next * recurrent mask, the next step's GEMM input; or null
  T* y;                  // B rows y_row apart (P, or 2P in a bidirectional output)
  int64_t y_row;
  T *c_hat, *c_rstd;     // layernorm only

  // Row b past its sequence's end: states carried, output zero, and zeros saved for backward
  // (where this row's gradients come out zero).
  void carry(int64_t b, int64_t u0, int64_t n) const {
    for (int64_t g = 0; g < G / H; ++g) std::memset(a + b * G + g * H + u0, 0, sizeof(T) * n);
    const int64_t r = b * H + u0;                 // P == H: the team loops have no projection
    std::memcpy(c_new + r, c + r, sizeof(T) * n);
    std::memset(phic + r, 0, sizeof(T) * n);
    std::memcpy(c_next + r, c + r, sizeof(T) * n);
    std::memcpy(h_next + r, h + r, sizeof(T) * n);
    std::memset(y + b * y_row + u0, 0, sizeof(T) * n);
    if (h_in_next) {
      for (int64_t j = 0; j < n; ++j) h_in_next[r + j] = h_next[r + j] * rm[r + j];
    }
  }

  void units(int64_t b, int64_t u0, int64_t n) const {
    update_cell(b, u0, n);
    if (cell == Cell::LayerNorm) c_rstd[b] = normalise_row(c_new + b * H, c_hat + b * H, H);   // u0 == 0, n == H
    emit(b, u0, n);
  }

  // The gates and c_new of the units; the output gate too. (A team loop normalises c_new here,
  // across threads, for the layernorm cell.)
  void update_cell(int64_t b, int64_t u0, int64_t n) const {
    const bool peep = cell == Cell::Peephole, cifg = cell == Cell::Cifg;
    T* ar = a + b * G;
    T* ai = cifg ? nullptr : ar + u0;
    T* af = (cifg ? ar : ar + H) + u0;
    T* ag = af + H;
    T* ao = ag + H;
    const T* cp = c + b * H + u0;
    if (peep) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        ai[j] += peeps[u0 + j] * cp[j];
        af[j] += peeps[H + u0 + j] * cp[j];
      }
    }
    if (!cifg) activate(ract, ai, n);
    activate(ract, af, n);
    activate(act, ag, n);
    T* cn = c_new + b * H + u0;
    if (cifg) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) cn[j] = af[j] * cp[j] + (T(1) - af[j]) * ag[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) cn[j] = af[j] * cp[j] + ai[j] * ag[j];
    }
    if (peep) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) ao[j] += peeps[2 * H + u0 + j] * cn[j];
    }
    activate(ract, ao, n);
  }

  // From c_new (and for the layernorm cell its normalised c_hat) to phic, the new states and y.
  void emit(int64_t b, int64_t u0, int64_t n) const {
    const T* ao = a + b * G + (cell == Cell::Cifg ? 2 : 3) * H + u0;
    const T* cp = c + b * H + u0;
    const T* cn = c_new + b * H + u0;
    T* pr = phic + b * H + u0;
    if (cell == Cell::LayerNorm) {
      const T* ch = c_hat + b * H + u0;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) pr[j] = ch[j] * gain_c[u0 + j] + bias_c[u0 + j];
    } else {
      std::memcpy(pr, cn, sizeof(T) * n);
    }
    activate(act, pr, n);
    next_state(keep_c, t, b, u0, n, cp, [cn](int64_t j) { return cn[j]; }, c_next + b * H + u0);
    if (proj) {
      T* hc = h_core + b * H + u0;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) hc[j] = ao[j] * pr[j];
      return;
    }
    const T om = out_mask.present() ? out_mask.at(t, b, 0) : T(1);
    const int64_t r = b * P + u0;                 // P == H without projection
    next_state(keep_h, t, b, u0, n, h + r, [ao, pr](int64_t j) { return ao[j] * pr[j]; }, h_next + r);
    emit_rows(h_next + r, om, y + b * y_row + u0, rm ? rm + r : nullptr, h_in_next ? h_in_next + r : nullptr, n);
  }
};

// The states of a forward call: all T + 1 when backward needs them (c_prev and h_in are views
// of these), else two that alternate. h0 [.., B, P] and c0 [.., B, H] are read as B rows.
template <typename T> struct LstmStates {
  Slots<T> h, c;
  int64_t steps;
  bool store;
  LstmStates(const Tensor& h0, const Tensor& c0, int64_t steps, bool store)
      : h(store ? steps + 1 : 2, h0.size(-2), h0.size(-1), h0.options()),
        c(store ? steps + 1 : 2, c0.size(-2), c0.size(-1), c0.options()), steps(steps), store(store) {
    std::memcpy(h[0], h0.data_ptr<T>(), sizeof(T) * h0.numel());
    std::memcpy(c[0], c0.data_ptr<T>(), sizeof(T) * c0.numel());
  }
  int64_t slot(int64_t t) const { return store ? t : t % 2; }
  // Step t of cf reads the states before it and writes those after it.
  void point(CellForward<T>& cf, int64_t t) const {
    cf.t = t;
    cf.h = h[slot(t)];
    cf.c = c[slot(t)];
    cf.h_next = h[slot(t + 1)];
    cf.c_next = c[slot(t + 1)];
  }
  Tensor h_prev() const { return h.tensor.narrow(0, 0, steps); }   // [T, B, P], store only
  Tensor c_prev() const { return c.tensor.narrow(0, 0, steps); }
  // What forward_steps returns (lstm_steps.py): y, h_T and c_T in h0's and c0's shapes, then
  // the 12 tensors saved for backward (`saved`, padded with undefined ones).
  std::vector<Tensor> results(const Tensor& y, const Tensor& h0, const Tensor& c0, std::vector<Tensor> saved) const {
    Tensor h_T = at::empty(h0.sizes(), y.options()), c_T = at::empty(c0.sizes(), y.options());
    std::memcpy(h_T.data_ptr<T>(), h[slot(steps)], sizeof(T) * h0.numel());
    std::memcpy(c_T.data_ptr<T>(), c[slot(steps)], sizeof(T) * c0.numel());
    saved.resize(12);
    std::vector<Tensor> out{y, h_T, c_T};
    out.insert(out.end(), saved.begin(), saved.end());
    return out;
  }
};

// Step t backward: from dL/dh_core (dm) and the carried dc to the gates' gradients d_pre and
// dc_{t-1}; the recurrent GEMM (dh_{t-1} += d_pre W_hh) is the caller's.
template <typename T> struct CellBackward {
  int64_t B, G, H, P;
  Cell cell;
  Act act, ract;
  const T *peeps, *gain_c, *dy;                 // dy [T, B, P] (step t at dy + t * dy_step) or null
  Mask<T> keep_h, keep_c, out_mask;
  // per step
  int64_t t;
  const T *g, *phic, *c_prev;                   // this step's gates [B, G], phic and c_prev [B, H]
  T* d_pre;              // [B, G] out
  T* dm;                 // [B, H] dL/d h_core in (layernorm: overwritten as scratch)
  T* dc;                 // [B, H] dc_t in, dc_{t-1} out
  T* dcn;                // [B, H] scratch
  T* dphi;               // [B, H] dL/d phi's input (layernorm: the step of d_c_norm)
  const T *c_hat, *c_rstd;
  int64_t dy_step = 0;   // B * P, or -B * P for a dy read from its end (common.h's step_walk)
  // Where d_row is set, d_pre is a thread's compact block of its own columns instead of a
  // [B, G] step: rows d_row apart, gates d_gate apart, starting at unit d_unit0.
  int64_t d_row = 0, d_gate = 0, d_unit0 = 0;

  // Gate k's gradients of row b from unit u0 on.
  T* d_at(int64_t b, int64_t k, int64_t u0) const {
    return d_row ? d_pre + b * d_row + k * d_gate + (u0 - d_unit0) : d_pre + b * G + k * H + u0;
  }

  // Points at step t of the saved gates, phic and c_prev and of d_pre, each [T, B, *].
  void point(int64_t step, const Tensor& gates, const Tensor& phic_all, const Tensor& c_prev_all,
             const Tensor& d_pre_all) {
    t = step;
    g = step_ptr<T>(gates, step);
    phic = step_ptr<T>(phic_all, step);
    c_prev = step_ptr<T>(c_prev_all, step);
    d_pre = step_ptr<T>(d_pre_all, step);
  }

  // dh_t (carried, plus dy_t) splits into the part that reaches h~_t (dh_new) and the part that
  // zoneout or lengths keep (left in dh for dh_{t-1}).
  void split_dh(T* dh, T* dh_new, int64_t b, int64_t u0, int64_t n) const {
    const T om = out_mask.present() ? out_mask.at(t, b, 0) : T(1);
    const int64_t r = b * P + u0;
    T* d = dh + r;
    T* dn = dh_new + r;
    if (dy) {
      const T* dyr = dy + t * dy_step + r;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] += dyr[j] * om;
    }
    split_by_keep(keep_h, t, b, u0, n, d, dn);
  }

  void units(int64_t b, int64_t u0, int64_t n) const {
    through_output(b, u0, n);
    if (cell == Cell::LayerNorm) {                // the whole row: u0 == 0, n == H
      T* tmp = dm + b * H;                        // dm of this row is no longer needed
      normalise_row_backward(dphi + b * H, gain_c, c_hat + b * H, c_rstd[b], tmp, H);
      for (int64_t j = 0; j < H; ++j) dcn[b * H + j] += tmp[j];
    }
    through_cell(b, u0, n);
  }

  // dc_t split by zoneout / lengths into dcn (through c_new) and the carried part; the output
  // gate's gradient; dphi and, outside the layer norm, its share of dcn. (A team loop adds the
  // layernorm cell's share of dcn here, across threads.)
  void through_output(int64_t b, int64_t u0, int64_t n) const {
    const int64_t o_gate = cell == Cell::Cifg ? 2 : 3;
    const T* go = g + b * G + o_gate * H + u0;
    T* dao = d_at(b, o_gate, u0);
    const int64_t r = b * H + u0;
    const T* pr = phic + r;
    const T* dmr = dm + r;
    T* dcr = dc + r;
    T* dcnr = dcn + r;
    T* dph = dphi + r;
    split_by_keep(keep_c, t, b, u0, n, dcr, dcnr);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      dao[j] = dmr[j] * pr[j];
      dph[j] = dmr[j] * go[j];
    }
    times_grad(act, dph, pr, n);                  // h_core = o * phi(c or LN(c))
    if (cell != Cell::LayerNorm) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) dcnr[j] += dph[j];
    }
    times_grad(ract, dao, go, n);
    if (cell == Cell::Peephole) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) dcnr[j] += dao[j] * peeps[2 * H + u0 + j];
    }
  }

  // From dcn to the input, forget and cell gates' gradients and dc_{t-1}.
  void through_cell(int64_t b, int64_t u0, int64_t n) const {
    const bool cifg = cell == Cell::Cifg;
    const T* gr = g + b * G;
    const T* gi = cifg ? nullptr : gr + u0;
    const T* gf = (cifg ? gr : gr + H) + u0;
    const T* gg = gf + H;
    T* dai = cifg ? nullptr : d_at(b, 0, u0);
    T* daf = d_at(b, cifg ? 0 : 1, u0);
    T* dag = d_at(b, cifg ? 1 : 2, u0);
    const int64_t r = b * H + u0;
    const T* cp = c_prev + r;
    T* dcr = dc + r;
    const T* dcnr = dcn + r;
    if (cifg) {                                   // c_new = f * c_prev + (1 - f) * g
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        dag[j] = dcnr[j] * (T(1) - gf[j]);
        daf[j] = dcnr[j] * (cp[j] - gg[j]);
        dcr[j] += dcnr[j] * gf[j];
      }
    } else {                                      // c_new = f * c_prev + i * g
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        dag[j] = dcnr[j] * gi[j];
        dai[j] = dcnr[j] * gg[j];
        daf[j] = dcnr[j] * cp[j];
        dcr[j] += dcnr[j] * gf[j];
      }
    }
    times_grad(act, dag, gg, n);
    times_grad(ract, daf, gf, n);
    if (!cifg) times_grad(ract, dai, gi, n);
    if (cell == Cell::Peephole) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) dcr[j] += dai[j] * peeps[u0 + j] + daf[j] * peeps[H + u0 + j];
    }
  }
};

// A team forward from x [T, B, I]: run(x, y, h0, c0, rmask, keep_h, keep_c, out_mask) on the
// whole batch, or, for a small layer (team.h's batch_chunks), on each thread's rows side by side
// (y: where the outputs go, those rows of out where given, else undefined). In training (store)
// each chunk's 12 saved tensors follow in turn. more_weights: how many weights the layer has
// besides W_ih and W_hh (a projection's W_hr).
template <typename T, typename Run>
std::vector<Tensor> lstm_forward_by_rows(const Tensor& x, const Tensor& w_hh, const Tensor& h0, const Tensor& c0,
                                         const OptTensor& out, const OptTensor& rmask, const OptTensor& keep_h,
                                         const OptTensor& keep_c, const OptTensor& out_mask, bool store,
                                         const Run& run, int64_t more_weights = 0) {
  const int64_t P = h0.size(-1);
  const int64_t weight_bytes = (w_hh.size(0) * (x.size(2) + P) + more_weights) * int64_t(sizeof(T));
  const int chunks = batch_chunks(x.size(1), weight_bytes, store);
  if (chunks == 1) return run(x, out.value_or(Tensor()), h0, c0, rmask, keep_h, keep_c, out_mask);
  return forward_in_batch_chunks(x, out, P, chunks, 2, store, [&](int64_t b0, int64_t n, const Tensor& y) {
    return run(x.narrow(1, b0, n), y, h0.narrow(-2, b0, n), c0.narrow(-2, b0, n), rows_of(rmask, 0, b0, n),
               rows_of(keep_h, 1, b0, n), rows_of(keep_c, 1, b0, n), rows_of(out_mask, 1, b0, n));
  });
}

}  // namespace lstmkit
