// The LSTM family's time loops, fused: the C++ twin of lstmkit/ops/lstm_steps.py (same
// arguments, same results; read that file for the equations and the shapes). The entry points
// below send float32 / float64 layers to the team loops (lstm_team*.cpp). The loop here is the
// one for what they do not cover, bfloat16 weights and the layernorm cell with a projection:
// per step one GEMM against the recurrent weight (gemm.cpp), then one pass over each batch row
// that applies the gates, updates the cell and blends the state, rows spread over the threads.
// The streaming step kernels are here too.
#include "loop_gradients.h"
#include "lstm_cell.h"
#include "row_dots.h"

namespace lstmkit {

bool team_fits(const Tensor& w_hh, const OptTensor& w_hr, const std::string& cell, at::ScalarType dtype);
bool team_ln_fits(const Tensor& w_hh, const OptTensor& w_hr, const std::string& cell, at::ScalarType dtype);
bool team_proj_fits(const Tensor& w_hh, const OptTensor& w_hr, const std::string& cell, at::ScalarType dtype);
std::vector<Tensor> lstm_team_proj_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, Tensor w_hr,
                                           OptTensor w_peep, OptTensor rmask, OptTensor keep_h, OptTensor keep_c,
                                           OptTensor out_mask, Cell cell, Act act, Act ract, bool store);
std::vector<Tensor> lstm_team_proj_forward_from_input(Tensor x, Tensor w_ih, OptTensor bias, Tensor h0, Tensor c0,
                                                      Tensor w_hh, Tensor w_hr, OptTensor w_peep, OptTensor rmask,
                                                      OptTensor keep_h, OptTensor keep_c, OptTensor out_mask,
                                                      Cell cell, Act act, Act ract, bool store, bool reversed,
                                                      OptTensor out);
std::vector<Tensor> lstm_team_proj_backward(OptTensor dy, Tensor dh_T, Tensor dc_T, Tensor gates, Tensor c_prev,
                                            OptTensor c_new, Tensor phic, Tensor w_hh, Tensor w_hr,
                                            OptTensor w_peep, OptTensor rmask, OptTensor keep_h, OptTensor keep_c,
                                            OptTensor out_mask, Cell cell, Act act, Act ract,
                                            const LoopInputs& inputs);
std::vector<Tensor> lstm_team_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, OptTensor w_peep,
                                      OptTensor rmask, OptTensor keep_h, OptTensor keep_c, OptTensor out_mask,
                                      Cell cell, Act act, Act ract, bool store);
std::vector<Tensor> lstm_team_forward_from_input(Tensor x, Tensor w_ih, OptTensor bias, Tensor h0, Tensor c0,
                                                 Tensor w_hh, OptTensor w_peep, OptTensor rmask, OptTensor keep_h,
                                                 OptTensor keep_c, OptTensor out_mask, Cell cell, Act act, Act ract,
                                                 bool store, bool reversed, OptTensor out);
std::vector<Tensor> lstm_team_backward(OptTensor dy, Tensor dh_T, Tensor dc_T, Tensor gates, Tensor c_prev,
                                       OptTensor c_new, Tensor phic, Tensor w_hh, OptTensor w_peep, OptTensor rmask,
                                       OptTensor keep_h, OptTensor keep_c, OptTensor out_mask, Cell cell, Act act,
                                       Act ract, const LoopInputs& inputs);
std::vector<Tensor> lstm_team_ln_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, OptTensor b_ih, OptTensor b_hh,
                                         OptTensor gain_ih, OptTensor gain_hh, OptTensor gain_c, OptTensor bias_c,
                                         OptTensor rmask, OptTensor keep_h, OptTensor keep_c, OptTensor out_mask,
                                         Act act, Act ract, bool store);
std::vector<Tensor> lstm_team_ln_forward_from_input(Tensor x, Tensor w_ih, Tensor h0, Tensor c0, Tensor w_hh,
                                                    OptTensor b_ih, OptTensor b_hh, OptTensor gain_ih,
                                                    OptTensor gain_hh, OptTensor gain_c, OptTensor bias_c,
                                                    OptTensor rmask, OptTensor keep_h, OptTensor keep_c,
                                                    OptTensor out_mask, Act act, Act ract, bool store,
                                                    bool reversed, OptTensor out);
std::vector<Tensor> lstm_team_ln_backward(OptTensor dy, Tensor dh_T, Tensor dc_T, Tensor gates, Tensor c_prev,
                                          Tensor phic, OptTensor x_hat, OptTensor x_rstd, OptTensor h_hat,
                                          OptTensor h_rstd, OptTensor c_hat, OptTensor c_rstd, Tensor w_hh,
                                          OptTensor gain_ih, OptTensor gain_hh, OptTensor gain_c, OptTensor rmask,
                                          OptTensor keep_h, OptTensor keep_c, OptTensor out_mask, Act act,
                                          Act ract, const LoopInputs& inputs);

namespace {

Tensor none() { return Tensor(); }

template <typename T>
std::vector<Tensor> forward(Tensor xw, const Tensor& h0, const Tensor& c0, const Tensor& w_hh, const OptTensor& b_ih,
                            const OptTensor& b_hh, const OptTensor& w_hr, const OptTensor& w_peep,
                            const OptTensor& ln_gain_ih, const OptTensor& ln_gain_hh, const OptTensor& ln_gain_c,
                            const OptTensor& ln_bias_c, const OptTensor& rmask,
                            const OptTensor& keep_h_t, const OptTensor& keep_c_t, const OptTensor& out_mask_t,
                            Cell cell, Act act, Act ract, bool store) {
  const int64_t steps = xw.size(0), B = xw.size(1), G = xw.size(2), H = c0.size(-1), P = h0.size(-1);
  const bool proj = w_hr && w_hr->defined(), peep = cell == Cell::Peephole, cifg = cell == Cell::Cifg,
             ln = cell == Cell::LayerNorm;
  auto opts = xw.options();
  const int64_t n = store ? steps : 1;            // per-step buffers keep every step, or reuse one

  const LstmStates<T> states(h0, c0, steps, store);
  Tensor y = at::empty({steps, B, P}, opts);
  Slots<T> h_in_all, c_new_all, h_core_all, h_hat_all, c_hat_all, hw, c_new_row;
  if (rmask) h_in_all = Slots<T>(n, B, P, opts);
  if (peep && store) c_new_all = Slots<T>(steps, B, H, opts); else c_new_row = Slots<T>(1, B, H, opts);
  Slots<T> phic_all(n, B, H, opts);
  if (proj) h_core_all = Slots<T>(n, B, H, opts);
  Slots<T> h_rstd_all, c_rstd_all, x_hat_all, x_rstd_all;
  if (ln) {
    x_hat_all = Slots<T>(n, B, G, opts);
    x_rstd_all = Slots<T>(steps, B, 1, opts);
    hw = Slots<T>(1, B, G, opts);
    h_hat_all = Slots<T>(n, B, G, opts);
    c_hat_all = Slots<T>(n, B, H, opts);
    h_rstd_all = Slots<T>(steps, B, 1, opts);
    c_rstd_all = Slots<T>(steps, B, 1, opts);
  }

  WeightGemm<T> gemm_hh(w_hh, /*trans=*/true, B);
  std::optional<WeightGemm<T>> gemm_hr;
  if (proj) gemm_hr.emplace(*w_hr, true, B);

  Mask<T> keep_h(keep_h_t), keep_c(keep_c_t), out_mask(out_mask_t);
  const T* rm = ptr_or_null<T>(rmask);
  const T* bi = ptr_or_null<T>(b_ih);
  const T* bh = ptr_or_null<T>(b_hh);
  const T* peeps = ptr_or_null<T>(w_peep);
  const T* gain_ih = ptr_or_null<T>(ln_gain_ih);
  const T* gain_hh = ptr_or_null<T>(ln_gain_hh);
  const T* gain_c = ptr_or_null<T>(ln_gain_c);
  const T* bias_c = ptr_or_null<T>(ln_bias_c);
  T* xw_p = xw.data_ptr<T>();
  CellForward<T> cf{G, H, P, cell, act, ract, proj, peeps, gain_c, bias_c, rm, keep_h, keep_c, out_mask};

  for (int64_t t = 0; t < steps; ++t) {
    const int64_t at_t = store ? t : 0;
    states.point(cf, t);
    const T* h = cf.h;
    T* h_next = cf.h_next;
    T* a = xw_p + t * B * G;                      // becomes the gate activations in place

    const T* h_in = h;
    if (rm) {
      T* hi = h_in_all[at_t];
      for (int64_t k = 0; k < B * P; ++k) hi[k] = h[k] * rm[k];
      h_in = hi;
    }
    if (ln) {
      gemm_hh.run(h_in, P, T(0), hw[0], G);
    } else {
      gemm_hh.run(h_in, P, T(1), a, G);         // a = xw_t + h_in W_hh^T
    }

    cf.a = a;
    cf.c_new = peep && store ? c_new_all[t] : c_new_row[0];
    cf.phic = phic_all[at_t];
    cf.h_core = h_core_all[at_t];
    cf.y = step_ptr<T>(y, t);
    cf.y_row = y.stride(1);
    cf.c_hat = c_hat_all[at_t];
    cf.c_rstd = c_rstd_all[t];
    T* x_hat = x_hat_all[at_t];
    T* x_rstd = x_rstd_all[t];
    T* h_hat = h_hat_all[at_t];
    T* h_rstd = h_rstd_all[t];
    T* h_core = cf.h_core;
    T* y_t = cf.y;

    for_rows(B, G, [&](int64_t b) {
      if (ln) {                                   // a = LN(W_ih x) g_ih + b_ih + LN(W_hh h) g_hh + b_hh
        T* ar = a + b * G;
        T* xh = x_hat + b * G;
        T* hh = h_hat + b * G;
        x_rstd[b] = normalise_row(ar, xh, G);
        h_rstd[b] = normalise_row(hw[0] + b * G, hh, G);
        for (int64_t j = 0; j < G; ++j) {
          ar[j] = xh[j] * gain_ih[j] + hh[j] * gain_hh[j] + (bi ? bi[j] : T(0)) + (bh ? bh[j] : T(0));
        }
      }
      cf.units(b, 0, H);
    });

    if (proj) {
      gemm_hr->run(h_core, H, T(0), h_next, P);   // h~ = W_hr (o * phi(c))
      for_rows(B, P, [&](int64_t b) {
        const T om = out_mask.present() ? out_mask.at(t, b, 0) : T(1);
        for (int64_t j = 0; j < P; ++j) {
          T k = keep_h.present() ? keep_h.at(t, b, j) : T(0);
          T hv = k * h[b * P + j] + (T(1) - k) * h_next[b * P + j];
          h_next[b * P + j] = hv;
          y_t[b * P + j] = hv * om;
        }
      });
    }
  }

  if (!store) return states.results(y, h0, c0, {});
  Tensor h_in_saved = rmask ? h_in_all.tensor : states.h_prev();
  return states.results(y, h0, c0, {xw, states.c_prev(), c_new_all.tensor, phic_all.tensor, h_in_saved,
                             h_core_all.tensor, x_hat_all.tensor, x_rstd_all.tensor, h_hat_all.tensor,
                             h_rstd_all.tensor, c_hat_all.tensor, c_rstd_all.tensor});
}

template <typename T>
std::vector<Tensor> backward(const OptTensor& dy_t, const Tensor& dh_T, const Tensor& dc_T, const Tensor& gates,
                             const Tensor& c_prev, const OptTensor& c_new, const Tensor& phic,
                             const OptTensor& x_hat, const OptTensor& x_rstd, const OptTensor& h_hat,
                             const OptTensor& h_rstd, const OptTensor& c_hat, const OptTensor& c_rstd,
                             const Tensor& w_hh, const OptTensor& w_hr, const OptTensor& w_peep,
                             const OptTensor& ln_gain_ih, const OptTensor& ln_gain_hh, const OptTensor& ln_gain_c,
                             const OptTensor& rmask, const OptTensor& keep_h_t, const OptTensor& keep_c_t,
                             const OptTensor& out_mask_t, Cell cell, Act act, Act ract) {
  (void)c_new;   // the peephole's gradient needs it, and lstm_bptt.py takes it after the loop
  const int64_t steps = gates.size(0), B = gates.size(1), G = gates.size(2), H = phic.size(2), P = dh_T.size(1);
  const bool proj = w_hr && w_hr->defined(), peep = cell == Cell::Peephole, cifg = cell == Cell::Cifg,
             ln = cell == Cell::LayerNorm;
  auto opts = gates.options();
  Tensor d_pre = at::empty({steps, B, G}, opts);
  Tensor d_hw = ln ? at::empty({steps, B, G}, opts) : none();
  Tensor d_xw = ln ? at::empty({steps, B, G}, opts) : none();
  Tensor dh_new_all = proj ? at::empty({steps, B, P}, opts) : none();
  Tensor d_c_norm = ln ? at::empty({steps, B, H}, opts) : none();
  Tensor dh = dh_T.clone(), dc = dc_T.clone();
  Tensor dm_buf = at::empty({B, H}, opts), dcn_buf = at::empty({B, H}, opts), dphi_buf = at::empty({B, H}, opts);
  Tensor dh_in_buf = rmask ? at::empty({B, P}, opts) : none();

  WeightGemm<T> gemm_hh(w_hh, /*trans=*/false, B);
  std::optional<WeightGemm<T>> gemm_hr;
  if (proj) gemm_hr.emplace(*w_hr, false, B);

  Mask<T> keep_h(keep_h_t), keep_c(keep_c_t), out_mask(out_mask_t);
  const T* dy = ptr_or_null<T>(dy_t);
  const T* rm = ptr_or_null<T>(rmask);
  const T* peeps = ptr_or_null<T>(w_peep);
  const T* gain_ih = ptr_or_null<T>(ln_gain_ih);
  const T* gain_hh = ptr_or_null<T>(ln_gain_hh);
  const T* gain_c = ptr_or_null<T>(ln_gain_c);
  T* dh_p = dh.data_ptr<T>();
  T* dc_p = dc.data_ptr<T>();
  T* dm = dm_buf.data_ptr<T>();

  CellBackward<T> cb{B, G, H, P, cell, act, ract, peeps, gain_c, dy, keep_h, keep_c, out_mask};
  cb.dm = dm;
  cb.dc = dc_p;
  cb.dcn = dcn_buf.data_ptr<T>();
  std::tie(cb.dy, cb.dy_step) = step_walk<T>(dy_t, false);

  for (int64_t t = steps - 1; t >= 0; --t) {
    cb.point(t, gates, phic, c_prev, d_pre);
    T* dh_new = proj ? step_ptr<T>(dh_new_all, t) : dm;
    for_rows(B, P, [&](int64_t b) { cb.split_dh(dh_p, dh_new, b, 0, P); });
    if (proj) gemm_hr->run(dh_new, P, T(0), dm, H);   // dm = dh~ W_hr

    T* dpre_t = cb.d_pre;
    cb.dphi = ln ? step_ptr<T>(d_c_norm, t) : dphi_buf.data_ptr<T>();
    cb.c_hat = ln ? step_ptr<T>(c_hat, t) : nullptr;
    cb.c_rstd = ln ? step_ptr<T>(c_rstd, t) : nullptr;
    const T* h_hat_t = ln ? step_ptr<T>(h_hat, t) : nullptr;
    const T* h_rstd_t = ln ? step_ptr<T>(h_rstd, t) : nullptr;
    T* d_hw_t = ln ? step_ptr<T>(d_hw, t) : nullptr;
    T* d_xw_t = ln ? step_ptr<T>(d_xw, t) : nullptr;
    const T* x_hat_t = ln ? step_ptr<T>(x_hat, t) : nullptr;
    const T* x_rstd_t = ln ? step_ptr<T>(x_rstd, t) : nullptr;

    for_rows(B, G, [&](int64_t b) {
      cb.units(b, 0, H);
      if (ln) {
        T* dr = dpre_t + b * G;
        normalise_row_backward(dr, gain_hh, h_hat_t + b * G, h_rstd_t[b], d_hw_t + b * G, G);
        normalise_row_backward(dr, gain_ih, x_hat_t + b * G, x_rstd_t[b], d_xw_t + b * G, G);
      }
    });

    const T* d_rec = ln ? d_hw_t : dpre_t;
    if (rm) {
      T* tmp = dh_in_buf.data_ptr<T>();
      gemm_hh.run(d_rec, G, T(0), tmp, P);
      for (int64_t k = 0; k < B * P; ++k) dh_p[k] += tmp[k] * rm[k];
    } else {
      gemm_hh.run(d_rec, G, T(1), dh_p, P);        // dh_{t-1} += d_rec W_hh
    }
  }
  return {d_pre, d_xw, d_hw, dh_new_all, d_c_norm, dh, dc};
}

// One step from x_t: the input projection here, then forward() with T = 1 (which normalises it
// for the layernorm cell) and nothing stored. The streaming path: no Python between the GEMMs.
template <typename T>
std::vector<Tensor> step(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih, const Tensor& w_hh,
                         const OptTensor& b_ih, const OptTensor& b_hh, const OptTensor& w_hr,
                         const OptTensor& w_peep, const OptTensor& ln_gain_ih, const OptTensor& ln_gain_hh,
                         const OptTensor& ln_gain_c, const OptTensor& ln_bias_c, Cell cell, Act act, Act ract) {
  const int64_t B = x.size(0), I = x.size(1), G = w_ih.size(0);
  const bool ln = cell == Cell::LayerNorm;
  Tensor xw = at::empty({1, B, G}, x.options());
  T* a = xw.data_ptr<T>();
  const T* bi = ln ? nullptr : ptr_or_null<T>(b_ih);   // outside a norm both biases fold in here;
  const T* bh = ln ? nullptr : ptr_or_null<T>(b_hh);   // the layernorm cell adds them after its norms
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < G; ++j) a[b * G + j] = (bi ? bi[j] : T(0)) + (bh ? bh[j] : T(0));
  }
  WeightGemm<T>(w_ih, /*trans=*/true, B).run(x.data_ptr<T>(), I, T(1), a, G);
  auto out = forward<T>(xw, h, c, w_hh, ln ? b_ih : OptTensor(), ln ? b_hh : OptTensor(), w_hr, w_peep, ln_gain_ih,
                        ln_gain_hh, ln_gain_c, ln_bias_c, OptTensor(), OptTensor(), OptTensor(), OptTensor(), cell,
                        act, ract, /*store=*/false);
  return {out[1], out[2]};
}

// The streaming step for a few rows (B <= 4) of the vanilla, peephole and cifg cells without
// projection: per block of units (one vector's worth), the dot products of the block's gate rows
// with x and h (row_dots.h), the gates and the cell update, written straight into the new state.
// Nothing else is allocated: the general step above spends more time allocating its per-step
// buffers than multiplying at streaming sizes.
constexpr int64_t kSmallStepRows = 4;

template <typename T>
std::vector<Tensor> small_step(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih,
                               const Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh,
                               const OptTensor& w_peep, Cell cell, Act act, Act ract) {
  constexpr int64_t L = RowDots<T>::L;
  const int64_t B = x.size(0), I = x.size(1), H = c.size(-1);
  const bool peep = cell == Cell::Peephole, cifg = cell == Cell::Cifg;
  const int64_t gates = cifg ? 3 : 4;             // row blocks of H: i,f,g,o (cifg: f,g,o)
  Tensor h_new = at::empty_like(h), c_new = at::empty_like(c);
  const T *xs = x.data_ptr<T>(), *hs = h.data_ptr<T>(), *cs = c.data_ptr<T>();
  const T *wi = w_ih.data_ptr<T>(), *wh = w_hh.data_ptr<T>();
  const T *bi = ptr_or_null<T>(b_ih), *bh = ptr_or_null<T>(b_hh), *p = ptr_or_null<T>(w_peep);
  T *hn = h_new.data_ptr<T>(), *cn = c_new.data_ptr<T>();
  const int64_t blocks = (H + L - 1) / L;
  // Threads only pay off when a block of work outweighs waking them (about 64K multiply-adds).
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, L * gates * (I + H) * B));
  at::parallel_for(0, blocks, grain, [&](int64_t k0, int64_t k1) {
    alignas(64) T pre[4][L];
    alignas(64) T phic[L];
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t u0 = k * L;
      const int n = static_cast<int>(std::min(L, H - u0));
      for (int64_t b = 0; b < B; ++b) {
        const T *xb = xs + b * I, *hb = hs + b * H, *cb = cs + b * H;
        for (int64_t g = 0; g < gates; ++g) {
          const int64_t r0 = g * H + u0;
          RowDots<T> dots;
          dots.add(wi + r0 * I, I, n, xb, I);
          dots.add(wh + r0 * H, H, n, hb, H);
          const auto sums = dots.sums();                  // (lanes past n unused)
          std::memcpy(pre[g], &sums, sizeof(pre[g]));
          for (int64_t j = 0; j < n; ++j) pre[g][j] += (bi ? bi[r0 + j] : T(0)) + (bh ? bh[r0 + j] : T(0));
        }
        T *ig = pre[0], *fg = cifg ? pre[0] : pre[1], *gg = pre[gates - 2], *og = pre[gates - 1];
        if (peep) {
          for (int64_t j = 0; j < n; ++j) {
            ig[j] += p[u0 + j] * cb[u0 + j];
            fg[j] += p[H + u0 + j] * cb[u0 + j];
          }
        }
        activate(ract, fg, n);
        if (!cifg) activate(ract, ig, n);
        activate(act, gg, n);
        T* cnb = cn + b * H + u0;
        for (int64_t j = 0; j < n; ++j) {
          const T i = cifg ? T(1) - fg[j] : ig[j];
          cnb[j] = fg[j] * cb[u0 + j] + i * gg[j];
        }
        if (peep) {
          for (int64_t j = 0; j < n; ++j) og[j] += p[2 * H + u0 + j] * cnb[j];
        }
        activate(ract, og, n);
        std::memcpy(phic, cnb, sizeof(T) * n);
        activate(act, phic, n);
        T* hnb = hn + b * H + u0;
        for (int64_t j = 0; j < n; ++j) hnb[j] = og[j] * phic[j];
      }
    }
  });
  return {h_new, c_new};
}

}  // namespace

// The options come first so that Python can bind them once (functools.partial). Returns
// (h', c', the output [B, P], a view of h').
std::tuple<Tensor, Tensor, Tensor> lstm_step(const std::string& cell, const std::string& act, const std::string& ract,
                                             Tensor x, Tensor h, Tensor c, Tensor w_ih, Tensor w_hh, OptTensor b_ih,
                                             OptTensor b_hh, OptTensor w_hr, OptTensor w_peep, OptTensor ln_gain_ih,
                                             OptTensor ln_gain_hh, OptTensor ln_gain_c, OptTensor ln_bias_c) {
  x = x.contiguous();
  h = h.contiguous();
  c = c.contiguous();
  check_inputs("lstm_step", x, {&h, &c, &w_ih, &w_hh},
               {&b_ih, &b_hh, &w_hr, &w_peep, &ln_gain_ih, &ln_gain_hh, &ln_gain_c, &ln_bias_c});
  const Cell kind = parse_cell(cell);
  const bool proj = w_hr && w_hr->defined();
  const bool small = x.size(0) <= kSmallStepRows && !proj && kind != Cell::LayerNorm && w_ih.is_contiguous() &&
                     w_hh.is_contiguous() && w_ih.scalar_type() == x.scalar_type();
  const std::vector<Tensor> next = AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_step", [&] {
    if (small) {
      return small_step<scalar_t>(x, h, c, w_ih, w_hh, b_ih, b_hh, w_peep, kind, parse_act(act), parse_act(ract));
    }
    return step<scalar_t>(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh, ln_gain_c,
                          ln_bias_c, kind, parse_act(act), parse_act(ract));
  });
  return {next[0], next[1], next[0].view({x.size(0), -1})};
}

std::vector<Tensor> lstm_forward_steps(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, OptTensor b_ih, OptTensor b_hh,
                                       OptTensor w_hr, OptTensor w_peep, OptTensor ln_gain_ih, OptTensor ln_gain_hh,
                                       OptTensor ln_gain_c, OptTensor ln_bias_c, OptTensor rmask, OptTensor keep_h,
                                       OptTensor keep_c, OptTensor out_mask, std::string cell, std::string act,
                                       std::string ract, bool store) {
  check_inputs("lstm_forward_steps", xw, {&h0, &c0, &w_hh},
               {&b_ih, &b_hh, &w_hr, &w_peep, &ln_gain_ih, &ln_gain_hh, &ln_gain_c, &ln_bias_c, &rmask, &keep_h,
                &keep_c, &out_mask});
  check_masks("lstm_forward_steps", xw.size(0), xw.size(1), rmask, h0.size(-1),
              {{&keep_h, h0.size(-1)}, {&keep_c, c0.size(-1)}, {&out_mask, 1}});
  if (team_ln_fits(w_hh, w_hr, cell, xw.scalar_type())) {
    return lstm_team_ln_forward(xw, h0, c0, w_hh, b_ih, b_hh, ln_gain_ih, ln_gain_hh, ln_gain_c, ln_bias_c, rmask,
                                keep_h, keep_c, out_mask, parse_act(act), parse_act(ract), store);
  }
  if (team_proj_fits(w_hh, w_hr, cell, xw.scalar_type())) {
    return lstm_team_proj_forward(xw, h0, c0, w_hh, *w_hr, w_peep, rmask, keep_h, keep_c, out_mask, parse_cell(cell),
                                  parse_act(act), parse_act(ract), store);
  }
  if (team_fits(w_hh, w_hr, cell, xw.scalar_type())) {
    return lstm_team_forward(xw, h0, c0, w_hh, w_peep, rmask, keep_h, keep_c, out_mask, parse_cell(cell),
                             parse_act(act), parse_act(ract), store);
  }
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "lstm_forward_steps", [&] {
    return forward<scalar_t>(xw, h0, c0, w_hh, b_ih, b_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh, ln_gain_c,
                             ln_bias_c, rmask, keep_h, keep_c, out_mask, parse_cell(cell), parse_act(act),
                             parse_act(ract), store);
  });
}

// lstm_forward_steps on the input projection x W_ih^T (+ b_ih + b_hh outside a layer norm),
// with the projection done inside the team loop (team.h's GateInput): x [T, B, I] with a
// contiguous last dimension (a batch_first view is fine), W_ih [G, I]. For the cells the team
// loops cover (vanilla, peephole, cifg and layernorm, the first three also with a projection),
// with W_ih in x's dtype. The saved gates come back where xw would be. `reversed`: the steps run from x's last
// to its first (the same as x.flip(0) without the copy): y in x's order, the masks and the
// saved tensors in the steps'. y goes into `out` where given (check_output: e.g. one half of a bidirectional layer's output).
bool input_fusion_fits(const Tensor& w_ih, const Tensor& w_hh, const OptTensor& w_hr, const std::string& cell,
                       at::ScalarType dtype) {
  return (team_fits(w_hh, w_hr, cell, dtype) || team_ln_fits(w_hh, w_hr, cell, dtype) ||
          team_proj_fits(w_hh, w_hr, cell, dtype)) &&
         w_ih.scalar_type() == dtype;
}

std::vector<Tensor> lstm_forward_input_steps(Tensor x, Tensor w_ih, OptTensor b_ih, OptTensor b_hh, Tensor h0,
                                             Tensor c0, Tensor w_hh, OptTensor w_hr, OptTensor w_peep,
                                             OptTensor ln_gain_ih,
                                             OptTensor ln_gain_hh, OptTensor ln_gain_c, OptTensor ln_bias_c,
                                             OptTensor rmask, OptTensor keep_h, OptTensor keep_c, OptTensor out_mask,
                                             std::string cell, std::string act, std::string ract, bool store,
                                             bool reversed, OptTensor out) {
  TORCH_CHECK(x.dim() == 3, "lstm_forward_input_steps: expected x [T, B, I], got ", x.sizes());
  if (x.stride(2) != 1) x = x.contiguous();
  w_ih = w_ih.contiguous();
  check_inputs("lstm_forward_input_steps", h0, {&c0, &w_hh, &w_ih},
               {&b_ih, &b_hh, &w_hr, &w_peep, &ln_gain_ih, &ln_gain_hh, &ln_gain_c, &ln_bias_c, &rmask, &keep_h, &keep_c,
                &out_mask});
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == h0.scalar_type(), "lstm_forward_input_steps: expected x ",
              "on the CPU in ", h0.scalar_type(), ", got ", x.scalar_type(), " on ", x.device());
  TORCH_CHECK(input_fusion_fits(w_ih, w_hh, w_hr, cell, x.scalar_type()), "lstm_forward_input_steps: the ", cell,
              " cell with these weights takes the projection before the loop (lstm_forward_steps)");
  TORCH_CHECK(w_ih.dim() == 2 && w_ih.size(0) == w_hh.size(0) && w_ih.size(1) == x.size(2),
              "lstm_forward_input_steps: expected W_ih [", w_hh.size(0), ", ", x.size(2), "], got ", w_ih.sizes());
  check_masks("lstm_forward_input_steps", x.size(0), x.size(1), rmask, h0.size(-1),
              {{&keep_h, h0.size(-1)}, {&keep_c, c0.size(-1)}, {&out_mask, 1}});
  check_output("lstm_forward_input_steps", out, x, h0.size(-1));
  if (cell == "layernorm") {   // the biases come after the norms
    return lstm_team_ln_forward_from_input(x, w_ih, h0, c0, w_hh, b_ih, b_hh, ln_gain_ih, ln_gain_hh, ln_gain_c,
                                           ln_bias_c, rmask, keep_h, keep_c, out_mask, parse_act(act),
                                           parse_act(ract), store, reversed, out);
  }
  const bool has_ih = b_ih && b_ih->defined(), has_hh = b_hh && b_hh->defined();
  OptTensor bias;
  if (has_ih || has_hh) bias = (has_ih && has_hh ? *b_ih + *b_hh : has_ih ? *b_ih : *b_hh).contiguous();
  if (w_hr && w_hr->defined()) {
    return lstm_team_proj_forward_from_input(x, w_ih, bias, h0, c0, w_hh, w_hr->contiguous(), w_peep, rmask, keep_h,
                                             keep_c, out_mask, parse_cell(cell), parse_act(act), parse_act(ract),
                                             store, reversed, out);
  }
  return lstm_team_forward_from_input(x, w_ih, bias, h0, c0, w_hh, w_peep, rmask, keep_h, keep_c, out_mask,
                                      parse_cell(cell), parse_act(act), parse_act(ract), store, reversed, out);
}

std::vector<Tensor> lstm_backward_steps(OptTensor dy, Tensor dh_T, Tensor dc_T, Tensor gates, Tensor c_prev,
                                        OptTensor c_new, Tensor phic, OptTensor x_hat, OptTensor x_rstd,
                                        OptTensor h_hat, OptTensor h_rstd, OptTensor c_hat, OptTensor c_rstd,
                                        Tensor w_hh, OptTensor w_hr, OptTensor w_peep, OptTensor ln_gain_ih,
                                        OptTensor ln_gain_hh, OptTensor ln_gain_c, OptTensor rmask, OptTensor keep_h,
                                        OptTensor keep_c, OptTensor out_mask, std::string cell, std::string act,
                                        std::string ract, OptTensor x, OptTensor w_ih, OptTensor h_in,
                                        OptTensor h_core, bool reversed, OptTensor dx_out) {
  check_inputs("lstm_backward_steps", gates, {&dh_T, &dc_T, &c_prev, &phic, &w_hh},
               {&dy, &c_new, &x_hat, &x_rstd, &h_hat, &h_rstd, &c_hat, &c_rstd, &w_hr, &w_peep, &ln_gain_ih,
                &ln_gain_hh, &ln_gain_c, &rmask, &keep_h, &keep_c, &out_mask});
  check_masks("lstm_backward_steps", gates.size(0), gates.size(1), rmask, dh_T.size(-1),
              {{&keep_h, dh_T.size(-1)}, {&keep_c, dc_T.size(-1)}, {&out_mask, 1}});
  auto inputs = [&](const OptTensor& core) {
    return loop_inputs("lstm_backward_steps", gates, x, w_ih, h_in, core, reversed, dx_out);
  };
  if (team_ln_fits(w_hh, w_hr, cell, gates.scalar_type())) {
    return lstm_team_ln_backward(dy, dh_T, dc_T, gates, c_prev, phic, x_hat, x_rstd, h_hat, h_rstd, c_hat, c_rstd,
                                 w_hh, ln_gain_ih, ln_gain_hh, ln_gain_c, rmask, keep_h, keep_c, out_mask,
                                 parse_act(act), parse_act(ract), inputs(OptTensor()));
  }
  if (team_fits(w_hh, w_hr, cell, gates.scalar_type())) {
    return lstm_team_backward(dy, dh_T, dc_T, gates, c_prev, c_new, phic, w_hh, w_peep, rmask, keep_h, keep_c,
                              out_mask, parse_cell(cell), parse_act(act), parse_act(ract), inputs(OptTensor()));
  }
  if (team_proj_fits(w_hh, w_hr, cell, gates.scalar_type())) {
    return lstm_team_proj_backward(dy, dh_T, dc_T, gates, c_prev, c_new, phic, w_hh, w_hr->contiguous(), w_peep,
                                   rmask, keep_h, keep_c, out_mask, parse_cell(cell), parse_act(act),
                                   parse_act(ract), inputs(h_core));
  }
  // The loop below reads dy in the steps' order.
  if (reversed && dy && dy->defined()) dy = dy->flip(0);
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward_steps", [&] {
    return backward<scalar_t>(dy, dh_T, dc_T, gates, c_prev, c_new, phic, x_hat, x_rstd, h_hat, h_rstd, c_hat,
                              c_rstd, w_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh, ln_gain_c, rmask, keep_h, keep_c,
                              out_mask, parse_cell(cell), parse_act(act), parse_act(ract));
  });
}

}  // namespace lstmkit

namespace lstmkit {

// lstm_backward_steps after a forward that ran the batch in chunks side by side (team.h's
// batch_chunks): `saved` holds each chunk's 12 saved tensors in turn, as
// lstm_forward_input_steps returned them (gates, c_prev, c_new, phic, h_in, h_core, x_hat,
// x_rstd, h_hat, h_rstd, c_hat, c_rstd). Each chunk's backward runs alone on one thread, on its
// rows of dy, dh_T, dc_T, the masks and x. Returns each chunk's lstm_backward_steps results in
// turn, 17 a chunk (the in-loop dx, dW_ih, dW_hh, dW_hr and the loops' column sums included,
// undefined where absent), for the caller to join and sum, then dx for the whole batch where
// the loops wrote it in place (backward_in_batch_chunks).
std::vector<Tensor> lstm_backward_chunks(OptTensor dy, Tensor dh_T, Tensor dc_T, std::vector<OptTensor> saved,
                                         Tensor w_hh, OptTensor w_hr, OptTensor w_peep, OptTensor ln_gain_ih,
                                         OptTensor ln_gain_hh, OptTensor ln_gain_c, OptTensor rmask, OptTensor keep_h, OptTensor keep_c,
                                         OptTensor out_mask, std::string cell, std::string act, std::string ract,
                                         Tensor x, Tensor w_ih, bool reversed) {
  constexpr size_t kSaved = 12;
  TORCH_CHECK(!saved.empty() && saved.size() % kSaved == 0 && x.dim() == 3, "lstm_backward_chunks: expected ",
              kSaved, " saved tensors a chunk and x [T, B, I], got ", saved.size(), " and ", x.sizes());
  const int chunks = static_cast<int>(saved.size() / kSaved);
  auto part = [&](int c, size_t i) { return saved[c * kSaved + i].value_or(Tensor()); };
  return backward_in_batch_chunks(x, chunks, 17, 7, [&](int c, int64_t b0, int64_t n, const Tensor& dx_rows) {
    return lstm_backward_steps(rows_of(dy, 1, b0, n), dh_T.narrow(-2, b0, n), dc_T.narrow(-2, b0, n), part(c, 0),
                               part(c, 1), part(c, 2), part(c, 3), part(c, 6), part(c, 7), part(c, 8), part(c, 9),
                               part(c, 10), part(c, 11), w_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh,
                               ln_gain_c, rows_of(rmask, 0, b0, n), rows_of(keep_h, 1, b0, n),
                               rows_of(keep_c, 1, b0, n), rows_of(out_mask, 1, b0, n), cell, act, ract,
                               rows_for_sums(x, b0, n), w_ih, part(c, 4), part(c, 5), reversed,
                               dx_rows);
  });
}

}  // namespace lstmkit
