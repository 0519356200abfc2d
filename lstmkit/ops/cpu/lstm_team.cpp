// The LSTM loops for cells whose hidden units depend on each other only through the recurrent
// GEMM (vanilla, peephole, cifg; no projection, no layer norm), with every mask and activation
// the family has. A team of threads is started once per call, and each thread owns a slice of
// the hidden units for the whole sequence: it packs its units' recurrent weights into panels
// (panel_gemm.h) that stay in its core's cache, and per step it multiplies them with the whole
// state and updates its own units' gates and cells right away, while the sums are hot. One
// barrier per step makes the new state whole before the next step reads it.
//
// Backward mirrors it: per step each thread turns its units' dh and dc into their gate
// gradients, a barrier, then it computes its own columns of dh_{t-1} = d_pre W_hh.
#include "lstm_cell.h"
#include "loop_gradients.h"
#include "panel_gemm.h"
#include "team.h"

namespace lstmkit {
namespace {

Tensor none() { return Tensor(); }

template <typename T>
std::vector<Tensor> forward(const GateInput& in, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                            const OptTensor& w_peep, const OptTensor& rmask, const OptTensor& keep_h_t,
                            const OptTensor& keep_c_t, const OptTensor& out_mask_t, Cell cell, Act act, Act ract,
                            bool store) {
  constexpr int64_t L = Simd<T>::lanes;
  const bool fused = in.fused();
  const Tensor& lead = fused ? in.x : in.xw;
  const int64_t steps = lead.size(0), B = lead.size(1), G = w_hh.size(0), H = c0.size(-1), P = H;
  const int64_t I = fused ? in.x.size(2) : 0;
  const int64_t gates = G / H, blocks = (H + L - 1) / L;
  const int64_t chunk_blocks = std::max<int64_t>(1, kPanelChunkBytes / (gates * L * (P + I) * int64_t(sizeof(T))));
  const bool peep = cell == Cell::Peephole;
  auto opts = c0.options();
  const int64_t n = store ? steps : 1;            // per-step buffers keep every step, or reuse one

  const LstmStates<T> states(h0, c0, steps, store);
  Tensor y = in.output(steps, B, P, opts);
  Slots<T> phic_all(n, B, H, opts), c_new_all(peep && store ? steps : 1, B, H, opts), h_in_all;
  const T* rm = ptr_or_null<T>(rmask);
  if (rm) h_in_all = Slots<T>(store ? steps : 2, B, P, opts);   // the next step's input is written
  Tensor panels = pooled_empty<T>({blocks * P * gates * L}, opts);     // while the current one is read
  T* pan = panels.data_ptr<T>();
  const T* w = w_hh.data_ptr<T>();
  const CellForward<T> base{G, H, P, cell, act, ract, /*proj=*/false, ptr_or_null<T>(w_peep), nullptr, nullptr,
                            rm, Mask<T>(keep_h_t), Mask<T>(keep_c_t), Mask<T>(out_mask_t)};
  const ActiveRows active = active_rows<T>(steps, B, base.out_mask, {{&base.keep_h, P}, {&base.keep_c, H}});
  const Team team = team_size(blocks, B * G * P);
  const ActiveInput<T> input(active, team.threads, P, opts);
  const InputSide<T> side(in, &active, team.threads, H, gates, store, opts);   // where the gates go

#pragma omp parallel num_threads(team.threads)
  {
    const Slice own(blocks, omp_get_thread_num(), team_workers(team));
    const int64_t own_u0 = own.unit0(L), own_units = own.units(H, L);
    pack_own_panels(own, w, H, P, gates, pan, side);
    CellForward<T> cf = base;
    if (rm) {
      mask_columns(states.h[0], rm, B, P, own_u0, own_units, h_in_all[0]);
#pragma omp barrier
    }
    alignas(64) T sums[kPanelRows * kPanelVecs * L];
    for (int64_t t = 0; t < steps; ++t) {
      states.point(cf, t);
      cf.a = side.gates_at(t);
      cf.c_new = c_new_all[peep && store ? t : 0];
      cf.phic = phic_all[store ? t : 0];
      cf.y = step_ptr<T>(y, in.reversed ? steps - 1 - t : t);   // y in x's order
      cf.y_row = y.stride(1);
      const T* src = rm ? h_in_all[states.slot(t)] : cf.h;
      cf.h_in_next = rm && t + 1 < steps ? h_in_all[states.slot(t + 1)] : nullptr;
      if (!fused && t + 1 < steps) prefetch_units(side.gates_at(t + 1), B, G, H, gates, own_u0, own_units);
      const StepRows<T> step = step_rows(active, input, side, t, omp_get_thread_num(), src, own_u0, own_units, cf);
      // Blocks in chunks whose panels fit the core's cache together; the cell update then runs
      // over the chunk's units at once (short loops cost more per unit than long ones).
      for (int64_t c0 = own.first; c0 < own.last; c0 += chunk_blocks) {
        const int64_t c1 = std::min(c0 + chunk_blocks, own.last), u0 = c0 * L, nu = std::min(H, c1 * L) - u0;
        for (int64_t r0 = 0; r0 < step.count; r0 += kPanelRows) {
          const int64_t rows = std::min(kPanelRows, step.count - r0);
          for (int64_t ub = c0; ub < c1; ++ub) {
            const int64_t nb = std::min(L, H - ub * L);
            const T* rec_panel = pan + ub * P * gates * L;
            if (fused) {
              panel_gemm<T>(rows, gates, step.x.data + r0 * step.x.stride, step.x.stride, I, side.panel(ub), sums);
              panel_gemm<T, ALayout::Rows, true>(rows, gates, step.src + r0 * P, P, P, rec_panel, sums);
            } else {
              panel_gemm<T>(rows, gates, step.src + r0 * P, P, P, rec_panel, sums);
            }
            for (int64_t r = 0; r < rows; ++r) side.store_sums(cf.a + step.of[r0 + r] * G, sums + r * gates * L, ub, nb);
          }
          for (int64_t r = 0; r < rows; ++r) cf.units(step.of[r0 + r], u0, nu);
        }
      }
#pragma omp barrier
    }
  }

  if (!store) return states.results(y, h0, c0, {});
  Tensor h_in_saved = rm ? h_in_all.tensor : states.h_prev();
  return states.results(y, h0, c0, {side.gates(), states.c_prev(), peep ? c_new_all.tensor : none(), phic_all.tensor,
                             h_in_saved});
}

template <typename T>
std::vector<Tensor> backward(const OptTensor& dy_t, const Tensor& dh_T, const Tensor& dc_T, const Tensor& gates,
                             const Tensor& c_prev, const OptTensor& c_new, const Tensor& phic, const Tensor& w_hh,
                             const OptTensor& w_peep,
                             const OptTensor& rmask, const OptTensor& keep_h_t, const OptTensor& keep_c_t,
                             const OptTensor& out_mask_t, Cell cell, Act act, Act ract,
                             const LoopInputs& inputs) {
  constexpr int64_t L = Simd<T>::lanes;
  const int64_t steps = gates.size(0), B = gates.size(1), G = gates.size(2), H = phic.size(2), P = H;
  const int64_t blocks = (P + L - 1) / L;
  auto opts = gates.options();
  const Team team = team_size(blocks, B * G * P);
  LoopGradients<T> grads(inputs, G, team.workers, opts);
  // With the weight gradients made in the loop, the biases' and the peepholes' gradients are
  // column sums made there too, and the gate gradients are kept only for the steps of one
  // weight-gradient sum, step t in slot t % ring (as in lstm_team_ln.cpp): no [T, B, G] buffer
  // written, then read again by reductions after the loop. Otherwise every step, for the GEMMs.
  const bool in_loop = grads.present(), peep = cell == Cell::Peephole;
  const int64_t ring = in_loop ? std::min(steps, grads.steps_per_sum()) : steps;
  Tensor d_pre = padded_steps<T>(ring, B, G, opts);   // GradientTiles reads whole vectors
  GateSums<T> sums(in_loop, G, H, peep);
  TORCH_CHECK(!(in_loop && peep) || (c_new && c_new->defined()), "the peephole cell's backward needs c_new");
  Tensor dh = dh_T.clone(), dc = dc_T.clone();
  Tensor dm = at::empty({B, H}, opts), dcn = at::empty({B, H}, opts), dphi = at::empty({B, H}, opts);
  Tensor panels = pooled_empty<T>({blocks * G * L}, opts);
  Tensor a_pack = pooled_empty<T>({team.threads, B, G}, opts);
  const Mask<T> keep_h(keep_h_t), keep_c(keep_c_t), out_mask(out_mask_t);
  const ActiveRows active = active_rows<T>(steps, B, out_mask, {{&keep_h, P}, {&keep_c, H}});
  T* pan = panels.data_ptr<T>();
  const T* w = w_hh.data_ptr<T>();
  const T* rm = ptr_or_null<T>(rmask);
  T* dh_p = dh.data_ptr<T>();
  CellBackward<T> base{B, G, H, P, cell, act, ract, ptr_or_null<T>(w_peep), nullptr, ptr_or_null<T>(dy_t),
                       keep_h, keep_c, out_mask};
  base.dm = dm.data_ptr<T>();
  base.dc = dc.data_ptr<T>();
  std::tie(base.dy, base.dy_step) = step_walk<T>(dy_t, inputs.reversed);   // dy in x's order
  base.dcn = dcn.data_ptr<T>();
  base.dphi = dphi.data_ptr<T>();

#pragma omp parallel num_threads(team.threads)
  {
    const int tid = omp_get_thread_num(), workers = team_workers(team);
    const Slice own(blocks, tid, workers);
    pack_column_panels(w, G, P, own.first, own.last, pan);
    const int64_t u0 = own.unit0(L), units = own.units(H, L);
    typename LoopGradients<T>::Thread mine(grads, own, Slice(grads.input_blocks(), tid, workers), H, G / H);
    CellBackward<T> cb = base;
    T* a_packed = a_pack.data_ptr<T>() + omp_get_thread_num() * B * G;
    for (int64_t t = steps - 1; t >= 0; --t) {
      cb.point(t, gates, phic, c_prev, d_pre);
      cb.d_pre = step_ptr<T>(d_pre, t % ring);
      const T* c_new_t = in_loop && peep ? step_ptr<T>(*c_new, t) : nullptr;
      if (t > 0) {                                // the previous step's saved values, fetched meanwhile
        prefetch_units(step_ptr<T>(gates, t - 1), B, G, H, G / H, u0, units);
        prefetch_units(step_ptr<T>(c_prev, t - 1), B, H, H, 1, u0, units);
        prefetch_units(step_ptr<T>(phic, t - 1), B, H, H, 1, u0, units);
        if (c_new_t) prefetch_units(step_ptr<T>(*c_new, t - 1), B, H, H, 1, u0, units);
      }
      const int64_t n_rows = active.count[t];
      const int64_t* rows_of = active.of(t);
      if (units > 0) {
        for (int64_t i = 0; i < n_rows; ++i) {
          const int64_t b = rows_of[i];
          cb.split_dh(dh_p, cb.dm, b, u0, units);
          cb.units(b, u0, units);
          if (in_loop) sums.add(cb.d_pre + b * G, cb.c_prev + b * H, c_new_t ? c_new_t + b * H : nullptr, u0, units);
        }
        for_inactive_rows(B, rows_of, n_rows, [&](int64_t b) {   // dh, dc pass through unchanged
          for (int64_t g = 0; g < G / H; ++g) std::memset(cb.d_pre + b * G + g * H + u0, 0, sizeof(T) * units);
        });
      }
      if (grads.present()) mine.add_weights(cb.d_pre, cb.d_pre, t);
#pragma omp barrier
      // dh_{t-1} (own columns) += d_pre_t W_hh, times the recurrent mask.
      add_product_columns(cb.d_pre, rows_of, n_rows, G, pan, own.first, own.last, P, rm, a_packed, dh_p);
      if (grads.present()) mine.input_columns(cb.d_pre, t, rows_of, n_rows, a_packed);
    }
    if (grads.present()) mine.write();
  }
  if (!in_loop) return {d_pre, none(), none(), none(), none(), dh, dc};
  std::vector<Tensor> out{none(), none(), none(), none(), none(), dh, dc};
  for (const Tensor& g : grads.results()) out.push_back(g);
  out.push_back(none());                          // dW_hr: no projection
  // the biases' gradient; the layernorm cell's four (none here); the peepholes'
  out.push_back(sums.biases(opts));
  out.insert(out.end(), 4, none());
  out.push_back(sums.peepholes(opts));
  return out;
}

}  // namespace

// Which team loop covers a layer: this file's (no projection, no layer norm), lstm_team_ln.cpp's
// (layer norm, no projection) or lstm_team_proj.cpp's (projection, no layer norm). Weights in the
// activations' dtype; bfloat16 weights and the layernorm cell with a projection take the
// per-step GEMM loop of lstm_steps.cpp.
bool team_fits(const Tensor& w_hh, const OptTensor& w_hr, const std::string& cell, at::ScalarType dtype) {
  return !(w_hr && w_hr->defined()) && cell != "layernorm" && w_hh.scalar_type() == dtype;
}
bool team_ln_fits(const Tensor& w_hh, const OptTensor& w_hr, const std::string& cell, at::ScalarType dtype) {
  return !(w_hr && w_hr->defined()) && cell == "layernorm" && w_hh.scalar_type() == dtype;
}
bool team_proj_fits(const Tensor& w_hh, const OptTensor& w_hr, const std::string& cell, at::ScalarType dtype) {
  return w_hr && w_hr->defined() && cell != "layernorm" && w_hh.scalar_type() == dtype &&
         w_hr->scalar_type() == dtype;
}

std::vector<Tensor> lstm_team_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, OptTensor w_peep,
                                      OptTensor rmask, OptTensor keep_h, OptTensor keep_c, OptTensor out_mask,
                                      Cell cell, Act act, Act ract, bool store) {
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "lstm_team_forward", [&] {
    return forward<scalar_t>(GateInput{xw, Tensor(), Tensor(), Tensor()}, h0, c0, w_hh, w_peep, rmask,
                             keep_h, keep_c, out_mask, cell, act, ract, store);
  });
}

std::vector<Tensor> lstm_team_forward_from_input(Tensor x, Tensor w_ih, OptTensor bias, Tensor h0, Tensor c0,
                                                 Tensor w_hh, OptTensor w_peep, OptTensor rmask, OptTensor keep_h,
                                                 OptTensor keep_c, OptTensor out_mask, Cell cell, Act act, Act ract,
                                                 bool store, bool reversed, OptTensor out) {
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_team_forward_from_input", [&] {
    auto run = [&](const Tensor& x, const Tensor& y, const Tensor& h0, const Tensor& c0, const OptTensor& rmask,
                   const OptTensor& keep_h, const OptTensor& keep_c, const OptTensor& out_mask) {
      return forward<scalar_t>(GateInput{Tensor(), x, w_ih, bias.value_or(Tensor()), reversed, y}, h0, c0, w_hh,
                               w_peep, rmask, keep_h, keep_c, out_mask, cell, act, ract, store);
    };
    return lstm_forward_by_rows<scalar_t>(x, w_hh, h0, c0, out, rmask, keep_h, keep_c, out_mask, store, run);
  });
}

std::vector<Tensor> lstm_team_backward(OptTensor dy, Tensor dh_T, Tensor dc_T, Tensor gates, Tensor c_prev,
                                       OptTensor c_new, Tensor phic, Tensor w_hh, OptTensor w_peep, OptTensor rmask,
                                       OptTensor keep_h, OptTensor keep_c, OptTensor out_mask, Cell cell, Act act,
                                       Act ract, const LoopInputs& inputs) {
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_team_backward", [&] {
    return backward<scalar_t>(dy, dh_T, dc_T, gates, c_prev, c_new, phic, w_hh, w_peep, rmask, keep_h, keep_c, out_mask,
                              cell, act, ract, inputs);
  });
}

}  // namespace lstmkit
