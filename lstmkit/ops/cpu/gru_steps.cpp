// The GRU's time loops, fused: the C++ twin of lstmkit/ops/gru_steps.py (same arguments and
// results; that file has the equations and shapes). Per step one GEMM against the recurrent
// weight, then one pass per batch row for the gates and the state blend.
#include "common.h"

namespace lstmkit {
namespace {

template <typename T>
std::vector<Tensor> forward(Tensor xw, const Tensor& h0, const Tensor& w_hh, const OptTensor& b_hh,
                            const OptTensor& rmask, const OptTensor& keep_h_t, const OptTensor& out_mask_t, Act act,
                            Act ract, bool store) {
  const int64_t steps = xw.size(0), B = xw.size(1), G = xw.size(2), H = h0.size(-1);   // h0 [.., B, H]
  auto opts = xw.options();
  const int64_t n = store ? steps : 1;
  Slots<T> h_states(store ? steps + 1 : 2, B, H, opts);   // h_prev and h_in are views of these
  std::memcpy(h_states[0], h0.data_ptr<T>(), sizeof(T) * B * H);
  Tensor y = at::empty({steps, B, H}, opts);
  Slots<T> gh(1, B, G, opts), gh_n_all(n, B, H, opts), h_in_all;
  if (rmask) h_in_all = Slots<T>(n, B, H, opts);

  WeightGemm<T> gemm_hh(w_hh, /*trans=*/true, B);
  Mask<T> keep_h(keep_h_t), out_mask(out_mask_t);
  const T* rm = ptr_or_null<T>(rmask);
  const T* bh = ptr_or_null<T>(b_hh);
  T* xw_p = xw.data_ptr<T>();

  for (int64_t t = 0; t < steps; ++t) {
    const int64_t slot = store ? t : t % 2, next = store ? t + 1 : (t + 1) % 2, at_t = store ? t : 0;
    const T* h = h_states[slot];
    T* h_next = h_states[next];
    const T* h_in = h;
    if (rm) {
      T* hi = h_in_all[at_t];
      for (int64_t k = 0; k < B * H; ++k) hi[k] = h[k] * rm[k];
      h_in = hi;
    }
    gemm_hh.run(h_in, H, T(0), gh[0], G);
    T* a = xw_p + t * B * G;                      // becomes r, z, n in place
    T* ghn = gh_n_all[at_t];
    T* y_t = step_ptr<T>(y, t);
    for_rows(B, G, [&](int64_t b) {
      T* ar = a + b * G;
      const T* ghr = gh[0] + b * G;
      T* ghn_r = ghn + b * H;
      for (int64_t j = 0; j < 2 * H; ++j) ar[j] += ghr[j] + (bh ? bh[j] : T(0));
      activate(ract, ar, 2 * H);                  // r, z
      for (int64_t j = 0; j < H; ++j) {
        ghn_r[j] = ghr[2 * H + j] + (bh ? bh[2 * H + j] : T(0));
        ar[2 * H + j] += ar[j] * ghn_r[j];
      }
      activate(act, ar + 2 * H, H);               // n
      const T om = out_mask.present() ? out_mask.at(t, b, 0) : T(1);
      for (int64_t j = 0; j < H; ++j) {
        T z = ar[H + j], n = ar[2 * H + j], hp = h[b * H + j];
        T hn = (T(1) - z) * n + z * hp;
        T k = keep_h.present() ? keep_h.at(t, b, j) : T(0);
        T hv = k * hp + (T(1) - k) * hn;
        h_next[b * H + j] = hv;
        y_t[b * H + j] = hv * om;
      }
    });
  }
  Tensor h_T = at::empty(h0.sizes(), opts);
  std::memcpy(h_T.data_ptr<T>(), h_states[store ? steps : steps % 2], sizeof(T) * B * H);
  if (!store) return {y, h_T, Tensor(), Tensor(), Tensor(), Tensor()};
  Tensor h_prev = h_states.tensor.narrow(0, 0, steps);
  return {y, h_T, xw, gh_n_all.tensor, h_prev, rmask ? h_in_all.tensor : h_prev};
}

template <typename T>
std::vector<Tensor> backward(const OptTensor& dy_t, const Tensor& dh_T, const Tensor& gates, const Tensor& gh_n,
                             const Tensor& h_prev, const Tensor& w_hh, const OptTensor& rmask,
                             const OptTensor& keep_h_t, const OptTensor& out_mask_t, Act act, Act ract) {
  const int64_t steps = gates.size(0), B = gates.size(1), G = gates.size(2), H = dh_T.size(1);
  auto opts = gates.options();
  Tensor d_gx = at::empty({steps, B, G}, opts), d_gh = at::empty({steps, B, G}, opts);
  Tensor dh = dh_T.clone();
  Tensor dh_in = rmask ? at::empty({B, H}, opts) : Tensor();
  WeightGemm<T> gemm_hh(w_hh, /*trans=*/false, B);
  Mask<T> keep_h(keep_h_t), out_mask(out_mask_t);
  const T* dy = ptr_or_null<T>(dy_t);
  const T* rm = ptr_or_null<T>(rmask);
  T* dh_p = dh.data_ptr<T>();

  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* g_t = step_ptr<T>(gates, t);
    const T* ghn_t = step_ptr<T>(gh_n, t);
    const T* hp_t = step_ptr<T>(h_prev, t);
    T* dgx_t = step_ptr<T>(d_gx, t);
    T* dgh_t = step_ptr<T>(d_gh, t);
    for_rows(B, G, [&](int64_t b) {
      const T* r = g_t + b * G;
      const T* z = r + H;
      const T* n = z + H;
      T* dx = dgx_t + b * G;
      T* dr = dx;
      T* dz = dx + H;
      T* dn = dx + 2 * H;
      const T om = out_mask.present() ? out_mask.at(t, b, 0) : T(1);
      for (int64_t j = 0; j < H; ++j) {
        T d = dh_p[b * H + j] + (dy ? dy[(t * B + b) * H + j] * om : T(0));
        T k = keep_h.present() ? keep_h.at(t, b, j) : T(0);
        T d_new = d * (T(1) - k);
        dn[j] = d_new * (T(1) - z[j]);            // h~ = (1 - z) n + z h_prev
        dz[j] = d_new * (hp_t[b * H + j] - n[j]);
        dh_p[b * H + j] = d * k + d_new * z[j];
      }
      times_grad(act, dn, n, H);
      times_grad(ract, dz, z, H);
      const T* ghn = ghn_t + b * H;
      for (int64_t j = 0; j < H; ++j) dr[j] = dn[j] * ghn[j];   // n = phi(gx_n + r gh_n)
      times_grad(ract, dr, r, H);
      T* dgh = dgh_t + b * G;
      for (int64_t j = 0; j < 2 * H; ++j) dgh[j] = dx[j];
      for (int64_t j = 0; j < H; ++j) dgh[2 * H + j] = dn[j] * r[j];
    });
    if (rm) {
      T* tmp = dh_in.data_ptr<T>();
      gemm_hh.run(dgh_t, G, T(0), tmp, H);
      for (int64_t k = 0; k < B * H; ++k) dh_p[k] += tmp[k] * rm[k];
    } else {
      gemm_hh.run(dgh_t, G, T(1), dh_p, H);
    }
  }
  return {d_gx, d_gh, dh};
}

// One step from x_t (the streaming path): input projection here, then forward() with T = 1.
template <typename T>
Tensor step(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const OptTensor& b_ih,
            const OptTensor& b_hh, Act act, Act ract) {
  const int64_t B = x.size(0), I = x.size(1), G = w_ih.size(0);
  Tensor xw = at::empty({1, B, G}, x.options());
  T* a = xw.data_ptr<T>();
  const T* bi = ptr_or_null<T>(b_ih);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < G; ++j) a[b * G + j] = bi ? bi[j] : T(0);
  }
  WeightGemm<T>(w_ih, /*trans=*/true, B).run(x.data_ptr<T>(), I, T(1), a, G);
  return forward<T>(xw, h, w_hh, b_hh, OptTensor(), OptTensor(), OptTensor(), act, ract, /*store=*/false)[1];
}

}  // namespace

Tensor gru_step(Tensor x, Tensor h, Tensor w_ih, Tensor w_hh, OptTensor b_ih, OptTensor b_hh, std::string act,
                std::string ract) {
  x = x.contiguous();
  h = h.contiguous();
  check_inputs("gru_step", x, {&h, &w_ih, &w_hh}, {&b_ih, &b_hh});
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_step", [&] {
    return step<scalar_t>(x, h, w_ih, w_hh, b_ih, b_hh, parse_act(act), parse_act(ract));
  });
}

std::vector<Tensor> gru_forward_steps(Tensor xw, Tensor h0, Tensor w_hh, OptTensor b_hh, OptTensor rmask,
                                      OptTensor keep_h, OptTensor out_mask, std::string act, std::string ract,
                                      bool store) {
  check_inputs("gru_forward_steps", xw, {&h0, &w_hh}, {&b_hh, &rmask, &keep_h, &out_mask});
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "gru_forward_steps", [&] {
    return forward<scalar_t>(xw, h0, w_hh, b_hh, rmask, keep_h, out_mask, parse_act(act), parse_act(ract), store);
  });
}

std::vector<Tensor> gru_backward_steps(OptTensor dy, Tensor dh_T, Tensor gates, Tensor gh_n, Tensor h_prev,
                                       Tensor w_hh, OptTensor rmask, OptTensor keep_h, OptTensor out_mask,
                                       std::string act, std::string ract) {
  check_inputs("gru_backward_steps", gates, {&dh_T, &gh_n, &h_prev, &w_hh}, {&dy, &rmask, &keep_h, &out_mask});
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_backward_steps", [&] {
    return backward<scalar_t>(dy, dh_T, gates, gh_n, h_prev, w_hh, rmask, keep_h, out_mask, parse_act(act),
                              parse_act(ract));
  });
}

}  // namespace lstmkit
