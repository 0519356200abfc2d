// The GRU's time loops, fused: the C++ twin of lstmkit/ops/gru_steps.py (same arguments and
// results; that file has the equations and shapes). Float32 and float64 run the team loops of
// gru_team.cpp; here is the loop for bfloat16 weights (per step one GEMM through WeightGemm,
// then one pass per batch row) and the streaming step.
#include "gru_cell.h"
#include "loop_gradients.h"

namespace lstmkit {

std::vector<Tensor> gru_team_forward(Tensor xw, Tensor h0, Tensor w_hh, OptTensor b_hh, OptTensor rmask,
                                     OptTensor keep_h, OptTensor out_mask, Act act, Act ract, bool store);
std::vector<Tensor> gru_team_backward(OptTensor dy, Tensor dh_T, Tensor gates, Tensor gh_n, Tensor h_prev,
                                      Tensor w_hh, OptTensor rmask, OptTensor keep_h, OptTensor out_mask, Act act,
                                      Act ract, const LoopInputs& inputs);

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
  GruForward<T> cf{G, H, act, ract, bh, rm, keep_h, out_mask};

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
    cf.t = t;
    cf.a = xw_p + t * B * G;                      // becomes r, z, n in place
    cf.gh = gh[0];
    cf.gh_n = gh_n_all[at_t];
    cf.h = h;
    cf.h_next = h_next;
    cf.y = step_ptr<T>(y, t);
    cf.y_row = y.stride(1);
    for_rows(B, G, [&](int64_t b) { cf.units(b, 0, H); });
  }
  Tensor h_T = at::empty(h0.sizes(), opts);
  std::memcpy(h_T.data_ptr<T>(), h_states[store ? steps : steps % 2], sizeof(T) * B * H);
  if (!store) return {y, h_T, Tensor(), Tensor(), Tensor(), Tensor()};
  Tensor h_prev = h_states.tensor.narrow(0, 0, steps);
  return {y, h_T, xw, gh_n_all.tensor, h_prev, rmask ? h_in_all.tensor : h_prev};
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

// The options come first so that Python can bind them once (functools.partial). Returns
// (h', the output [B, H], a view of h').
std::tuple<Tensor, Tensor> gru_step(const std::string& act, const std::string& ract, Tensor x, Tensor h, Tensor w_ih,
                                    Tensor w_hh, OptTensor b_ih, OptTensor b_hh) {
  x = x.contiguous();
  h = h.contiguous();
  check_inputs("gru_step", x, {&h, &w_ih, &w_hh}, {&b_ih, &b_hh});
  Tensor next = AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_step", [&] {
    return step<scalar_t>(x, h, w_ih, w_hh, b_ih, b_hh, parse_act(act), parse_act(ract));
  });
  return {next, next.view({x.size(0), -1})};
}

std::vector<Tensor> gru_forward_steps(Tensor xw, Tensor h0, Tensor w_hh, OptTensor b_hh, OptTensor rmask,
                                      OptTensor keep_h, OptTensor out_mask, std::string act, std::string ract,
                                      bool store) {
  check_inputs("gru_forward_steps", xw, {&h0, &w_hh}, {&b_hh, &rmask, &keep_h, &out_mask});
  check_masks("gru_forward_steps", xw.size(0), xw.size(1), rmask, h0.size(-1),
              {{&keep_h, h0.size(-1)}, {&out_mask, 1}});
  if (w_hh.scalar_type() == xw.scalar_type()) {   // (a bfloat16 weight takes the per-step GEMM loop)
    return gru_team_forward(xw, h0, w_hh, b_hh, rmask, keep_h, out_mask, parse_act(act), parse_act(ract), store);
  }
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "gru_forward_steps", [&] {
    return forward<scalar_t>(xw, h0, w_hh, b_hh, rmask, keep_h, out_mask, parse_act(act), parse_act(ract), store);
  });
}

std::vector<Tensor> gru_backward_steps(OptTensor dy, Tensor dh_T, Tensor gates, Tensor gh_n, Tensor h_prev,
                                       Tensor w_hh, OptTensor rmask, OptTensor keep_h, OptTensor out_mask,
                                       std::string act, std::string ract, OptTensor x, OptTensor w_ih,
                                       OptTensor h_in, bool reversed, OptTensor dx_out) {
  check_inputs("gru_backward_steps", gates, {&dh_T, &gh_n, &h_prev, &w_hh}, {&dy, &rmask, &keep_h, &out_mask});
  check_masks("gru_backward_steps", gates.size(0), gates.size(1), rmask, dh_T.size(-1),
              {{&keep_h, dh_T.size(-1)}, {&out_mask, 1}});
  return gru_team_backward(dy, dh_T, gates, gh_n, h_prev, w_hh, rmask, keep_h, out_mask, parse_act(act),
                           parse_act(ract),
                           loop_inputs("gru_backward_steps", gates, x, w_ih, h_in, OptTensor(), reversed, dx_out));
}

}  // namespace lstmkit

namespace lstmkit {

// gru_backward_steps after a forward that ran the batch in chunks side by side (team.h's
// batch_chunks): `saved` holds each chunk's 4 saved tensors in turn (gates, gh_n, h_prev, h_in).
// Each chunk's backward runs alone on one thread, on its rows; returns each chunk's
// gru_backward_steps results in turn, 8 a chunk, for the caller to join and sum, then dx for
// the whole batch where the loops wrote it in place (backward_in_batch_chunks).
std::vector<Tensor> gru_backward_chunks(OptTensor dy, Tensor dh_T, std::vector<Tensor> saved, Tensor w_hh,
                                        OptTensor rmask, OptTensor keep_h, OptTensor out_mask, std::string act,
                                        std::string ract, Tensor x, Tensor w_ih, bool reversed) {
  constexpr size_t kSaved = 4;
  TORCH_CHECK(!saved.empty() && saved.size() % kSaved == 0 && x.dim() == 3, "gru_backward_chunks: expected ",
              kSaved, " saved tensors a chunk and x [T, B, I], got ", saved.size(), " and ", x.sizes());
  const int chunks = static_cast<int>(saved.size() / kSaved);
  return backward_in_batch_chunks(x, chunks, 8, 3, [&](int c, int64_t b0, int64_t n, const Tensor& dx_rows) {
    const Tensor* s = saved.data() + c * kSaved;
    return gru_backward_steps(rows_of(dy, 1, b0, n), dh_T.narrow(-2, b0, n), s[0], s[1], s[2], w_hh,
                              rows_of(rmask, 0, b0, n), rows_of(keep_h, 1, b0, n), rows_of(out_mask, 1, b0, n), act,
                              ract, rows_for_sums(x, b0, n), w_ih, s[3], reversed, dx_rows);
  });
}

}  // namespace lstmkit
