// The LSTM cells with a projection (h = W_hr (o * phi(c)), P outputs from H cells; vanilla,
// peephole, cifg) run by a team of threads, as lstm_team.cpp does without one. Each thread
// owns a slice of the H units and a slice of the P outputs. Two barriers per step:
//   forward   own units: gates and cells, h_core = o * phi(c)    | barrier
//             own outputs: h~ = h_core W_hr^T, blended into h    | barrier
//   backward  own outputs: dh_t split into dh~ and the carried part  | barrier
//             own units: dh_core = dh~ W_hr, then the cell's gradients  | barrier
//             own outputs: dh_{t-1} += d_pre W_hh
// As in lstm_team.cpp, the forward can multiply x_t W_ih itself (team.h's GateInput) and the
// backward can make dx, dW_ih, dW_hh and the column sums in its loop (loop_gradients.h); here it
// makes dW_hr = sum_t dh~_t^T h_core_t there too, each thread the rows of its own outputs.
#include "loop_gradients.h"
#include "lstm_cell.h"
#include "panel_gemm.h"
#include "team.h"

namespace lstmkit {
namespace {

Tensor none() { return Tensor(); }

template <typename T>
std::vector<Tensor> forward(const GateInput& in, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                            const Tensor& w_hr, const OptTensor& w_peep, const OptTensor& rmask,
                            const OptTensor& keep_h_t, const OptTensor& keep_c_t, const OptTensor& out_mask_t,
                            Cell cell, Act act, Act ract, bool store) {
  constexpr int64_t L = Simd<T>::lanes;
  const bool fused = in.fused();
  const Tensor& lead = fused ? in.x : in.xw;
  const int64_t steps = lead.size(0), B = lead.size(1), G = w_hh.size(0), H = c0.size(-1), P = h0.size(-1);
  const int64_t I = fused ? in.x.size(2) : 0;
  const int64_t gates = G / H, unit_blocks = (H + L - 1) / L, out_blocks = (P + L - 1) / L;
  const int64_t chunk_blocks = std::max<int64_t>(1, kPanelChunkBytes / (gates * L * (P + I) * int64_t(sizeof(T))));
  const bool peep = cell == Cell::Peephole;
  auto opts = c0.options();
  const int64_t n = store ? steps : 1;

  const LstmStates<T> states(h0, c0, steps, store);
  Tensor y = in.output(steps, B, P, opts);
  Slots<T> phic_all(n, B, H, opts), c_new_all(peep && store ? steps : 1, B, H, opts), h_core_all(n, B, H, opts);
  Slots<T> h_in_all;
  const T* rm = ptr_or_null<T>(rmask);
  if (rm) h_in_all = Slots<T>(store ? steps : 2, B, P, opts);
  const Tensor w_hr_t = w_hr.t().contiguous();   // [H, P]: the projection's columns are outputs
  Tensor gate_panels = pooled_empty<T>({unit_blocks * P * gates * L}, opts);
  Tensor out_panels = pooled_empty<T>({out_blocks * H * L}, opts);
  const Team team = team_size(unit_blocks, B * G * P);
  const InputSide<T> side(in, nullptr, team.threads, H, gates, store, opts);   // where the gates go
  Tensor a_pack = pooled_empty<T>({team.threads, B, H}, opts);
  T *gp = gate_panels.data_ptr<T>(), *op = out_panels.data_ptr<T>();
  const CellForward<T> base{G, H, P, cell, act, ract, /*proj=*/true, ptr_or_null<T>(w_peep), nullptr, nullptr,
                            rm, Mask<T>(keep_h_t), Mask<T>(keep_c_t), Mask<T>(out_mask_t)};

#pragma omp parallel num_threads(team.threads)
  {
    const int tid = omp_get_thread_num();
    const Slice units(unit_blocks, tid, team_workers(team)), outs(out_blocks, tid, team_workers(team));
    const int64_t u0 = units.unit0(L), nu = units.units(H, L);
    const int64_t p0 = outs.unit0(L), np = outs.units(P, L);
    pack_own_panels(units, w_hh.data_ptr<T>(), H, P, gates, gp, side);
    pack_column_panels(w_hr_t.data_ptr<T>(), H, P, outs.first, outs.last, op);
    T* a_packed = a_pack.data_ptr<T>() + tid * B * H;
    std::vector<int64_t> all_rows(B);
    for (int64_t b = 0; b < B; ++b) all_rows[b] = b;
    if (rm) mask_columns(states.h[0], rm, B, P, p0, np, h_in_all[0]);
#pragma omp barrier
    CellForward<T> cf = base;
    alignas(64) T sums[kPanelRows * kPanelVecs * L];
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t at_t = store ? t : 0;
      states.point(cf, t);
      cf.a = side.gates_at(t);
      cf.c_new = c_new_all[peep && store ? t : 0];
      cf.phic = phic_all[at_t];
      cf.h_core = h_core_all[at_t];
      cf.y = step_ptr<T>(y, in.reversed ? steps - 1 - t : t);   // y in x's order
      cf.y_row = y.stride(1);
      const T* src = rm ? h_in_all[states.slot(t)] : cf.h;
      T* h_in_next = rm && t + 1 < steps ? h_in_all[states.slot(t + 1)] : nullptr;
      const auto x_t = fused ? side.x_rows(t, tid) : typename ActiveInput<T>::Rows{nullptr, 0};
      if (!fused && t + 1 < steps) prefetch_units(side.gates_at(t + 1), B, G, H, gates, u0, nu);
      // Own units: gates, cells and h_core, in chunks of blocks whose panels share the L2.
      for (int64_t c0 = units.first; c0 < units.last; c0 += chunk_blocks) {
        const int64_t c1 = std::min(c0 + chunk_blocks, units.last), cu0 = c0 * L, cnu = std::min(H, c1 * L) - cu0;
        for (int64_t r0 = 0; r0 < B; r0 += kPanelRows) {
          const int64_t rows = std::min(kPanelRows, B - r0);
          for (int64_t ub = c0; ub < c1; ++ub) {
            const T* rec_panel = gp + ub * P * gates * L;
            if (fused) {
              panel_gemm<T>(rows, gates, x_t.data + r0 * x_t.stride, x_t.stride, I, side.panel(ub), sums);
              panel_gemm<T, ALayout::Rows, true>(rows, gates, src + r0 * P, P, P, rec_panel, sums);
            } else {
              panel_gemm<T>(rows, gates, src + r0 * P, P, P, rec_panel, sums);
            }
            const int64_t nb = std::min(L, H - ub * L);
            for (int64_t r = 0; r < rows; ++r) side.store_sums(cf.a + (r0 + r) * G, sums + r * gates * L, ub, nb);
          }
          for (int64_t r = 0; r < rows; ++r) cf.units(r0 + r, cu0, cnu);
        }
      }
#pragma omp barrier
      // Own outputs: h~ = h_core W_hr^T, then zoneout / lengths, y and the next input.
      if (np > 0) {
        for (int64_t b = 0; b < B; ++b) std::memset(cf.h_next + b * P + p0, 0, sizeof(T) * np);
        add_product_columns(cf.h_core, all_rows.data(), B, H, op, outs.first, outs.last, P, (const T*)nullptr,
                            a_packed, cf.h_next);
        for (int64_t b = 0; b < B; ++b) {
          const T om = cf.out_mask.present() ? cf.out_mask.at(t, b, 0) : T(1);
          for (int64_t j = p0; j < p0 + np; ++j) {
            const int64_t o = b * P + j;
            const T k = cf.keep_h.present() ? cf.keep_h.at(t, b, j) : T(0);
            const T hv = k * cf.h[o] + (T(1) - k) * cf.h_next[o];
            cf.h_next[o] = hv;
            cf.y[b * cf.y_row + j] = hv * om;
            if (h_in_next) h_in_next[o] = hv * rm[o];
          }
        }
      }
#pragma omp barrier
    }
  }

  if (!store) return states.results(y, h0, c0, {});
  Tensor h_in_saved = rm ? h_in_all.tensor : states.h_prev();
  return states.results(y, h0, c0, {side.gates(), states.c_prev(), peep ? c_new_all.tensor : none(),
                                    phic_all.tensor, h_in_saved, h_core_all.tensor});
}

template <typename T>
std::vector<Tensor> backward(const OptTensor& dy_t, const Tensor& dh_T, const Tensor& dc_T, const Tensor& gates,
                             const Tensor& c_prev, const OptTensor& c_new, const Tensor& phic, const Tensor& w_hh,
                             const Tensor& w_hr, const OptTensor& w_peep, const OptTensor& rmask,
                             const OptTensor& keep_h_t, const OptTensor& keep_c_t, const OptTensor& out_mask_t,
                             Cell cell, Act act, Act ract, const LoopInputs& inputs) {
  constexpr int64_t L = Simd<T>::lanes;
  const int64_t steps = gates.size(0), B = gates.size(1), G = gates.size(2), H = phic.size(2), P = dh_T.size(1);
  const int64_t unit_blocks = (H + L - 1) / L, out_blocks = (P + L - 1) / L;
  auto opts = gates.options();
  const Team team = team_size(unit_blocks, B * G * P);
  LoopGradients<T> grads(inputs, G, team.workers, opts);
  // With the gradients made in the loop, d_pre and dh~ are kept only for the steps of one
  // weight-gradient sum (step t in slot t % ring, as in lstm_team.cpp); otherwise every step's,
  // for the GEMMs after the loop.
  const bool in_loop = grads.present(), peep = cell == Cell::Peephole;
  TORCH_CHECK(!in_loop || inputs.h_core.defined(), "the projection's in-loop gradients need h_core");
  TORCH_CHECK(!(in_loop && peep) || (c_new && c_new->defined()), "the peephole cell's backward needs c_new");
  const int64_t per_sum = in_loop ? grads.steps_per_sum() : steps, ring = std::min(steps, per_sum);
  Tensor d_pre = padded_steps<T>(ring, B, G, opts), dh_new_all = padded_steps<T>(ring, B, P, opts);
  GateSums<T> sums(in_loop, G, H, peep);
  Tensor dw_hr = in_loop ? at::empty({P, H}, opts) : Tensor();
  Tensor dh = dh_T.clone(), dc = dc_T.clone();
  Tensor dm = at::empty({B, H}, opts), dcn = at::empty({B, H}, opts), dphi = at::empty({B, H}, opts);
  Tensor hh_panels = pooled_empty<T>({out_blocks * G * L}, opts);
  Tensor hr_panels = pooled_empty<T>({unit_blocks * P * L}, opts);
  Tensor a_pack = pooled_empty<T>({team.threads, B, std::max(G, P)}, opts);
  const T* rm = ptr_or_null<T>(rmask);
  T *dh_p = dh.data_ptr<T>(), *hhp = hh_panels.data_ptr<T>(), *hrp = hr_panels.data_ptr<T>();
  CellBackward<T> base{B, G, H, P, cell, act, ract, ptr_or_null<T>(w_peep), nullptr, ptr_or_null<T>(dy_t),
                       Mask<T>(keep_h_t), Mask<T>(keep_c_t), Mask<T>(out_mask_t)};
  base.dm = dm.data_ptr<T>();
  base.dc = dc.data_ptr<T>();
  std::tie(base.dy, base.dy_step) = step_walk<T>(dy_t, inputs.reversed);   // dy in x's order
  base.dcn = dcn.data_ptr<T>();
  base.dphi = dphi.data_ptr<T>();

#pragma omp parallel num_threads(team.threads)
  {
    const int tid = omp_get_thread_num(), workers = team_workers(team);
    const Slice units(unit_blocks, tid, workers), outs(out_blocks, tid, workers);
    const int64_t u0 = units.unit0(L), nu = units.units(H, L);
    const int64_t p0 = outs.unit0(L), np = outs.units(P, L);
    pack_column_panels(w_hh.data_ptr<T>(), G, P, outs.first, outs.last, hhp);
    pack_column_panels(w_hr.data_ptr<T>(), P, H, units.first, units.last, hrp);
    typename LoopGradients<T>::Thread mine(grads, units, Slice(grads.input_blocks(), tid, workers), H, G / H);
    GradientTiles<T> hr_tiles(outs, P, 1, in_loop ? H : 0);   // the rows of dW_hr of its own outputs
    T* a_packed = a_pack.data_ptr<T>() + tid * B * std::max(G, P);
    std::vector<int64_t> all_rows(B);
    for (int64_t b = 0; b < B; ++b) all_rows[b] = b;
    CellBackward<T> cb = base;
    for (int64_t t = steps - 1; t >= 0; --t) {
      cb.point(t, gates, phic, c_prev, d_pre);
      cb.d_pre = step_ptr<T>(d_pre, t % ring);
      T* dh_new = step_ptr<T>(dh_new_all, t % ring);
      if (np > 0) {
        for (int64_t b = 0; b < B; ++b) cb.split_dh(dh_p, dh_new, b, p0, np);
        if (in_loop && t % per_sum == 0) {        // steps [t, t + per_sum): slots 0 .. of the ring
          hr_tiles.add(dh_new, P, step_ptr<T>(inputs.h_core, t), H, std::min(per_sum, steps - t) * B);
        }
      }
#pragma omp barrier
      if (nu > 0) {                               // dh_core = dh~ W_hr, own units; then the cell
        for (int64_t b = 0; b < B; ++b) std::memset(cb.dm + b * H + u0, 0, sizeof(T) * nu);
        add_product_columns(dh_new, all_rows.data(), B, P, hrp, units.first, units.last, H, (const T*)nullptr,
                            a_packed, cb.dm);
        const T* c_new_t = in_loop && peep ? step_ptr<T>(*c_new, t) : nullptr;
        for (int64_t b = 0; b < B; ++b) {
          cb.units(b, u0, nu);
          if (in_loop) sums.add(cb.d_pre + b * G, cb.c_prev + b * H, c_new_t ? c_new_t + b * H : nullptr, u0, nu);
        }
      }
      if (in_loop) mine.add_weights(cb.d_pre, cb.d_pre, t);
#pragma omp barrier
      add_product_columns(cb.d_pre, all_rows.data(), B, G, hhp, outs.first, outs.last, P, rm, a_packed, dh_p);
      if (in_loop) mine.input_columns(cb.d_pre, t, all_rows.data(), B, a_packed);
    }
    if (in_loop) {
      mine.write();
      hr_tiles.write(dw_hr.data_ptr<T>());
    }
  }
  if (!in_loop) return {d_pre, none(), none(), dh_new_all, none(), dh, dc};
  std::vector<Tensor> out{none(), none(), none(), none(), none(), dh, dc};
  for (const Tensor& g : grads.results()) out.push_back(g);
  out.push_back(dw_hr);
  // the biases' gradient; the layernorm cell's four (none here); the peepholes'
  out.push_back(sums.biases(opts));
  out.insert(out.end(), 4, none());
  out.push_back(sums.peepholes(opts));
  return out;
}

}  // namespace

std::vector<Tensor> lstm_team_proj_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, Tensor w_hr,
                                           OptTensor w_peep, OptTensor rmask, OptTensor keep_h, OptTensor keep_c,
                                           OptTensor out_mask, Cell cell, Act act, Act ract, bool store) {
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "lstm_team_proj_forward", [&] {
    return forward<scalar_t>(GateInput{xw, Tensor(), Tensor(), Tensor()}, h0, c0, w_hh, w_hr, w_peep, rmask, keep_h,
                             keep_c, out_mask, cell, act, ract, store);
  });
}

std::vector<Tensor> lstm_team_proj_forward_from_input(Tensor x, Tensor w_ih, OptTensor bias, Tensor h0, Tensor c0,
                                                      Tensor w_hh, Tensor w_hr, OptTensor w_peep, OptTensor rmask,
                                                      OptTensor keep_h, OptTensor keep_c, OptTensor out_mask,
                                                      Cell cell, Act act, Act ract, bool store, bool reversed,
                                                      OptTensor out) {
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_team_proj_forward_from_input", [&] {
    auto run = [&](const Tensor& x, const Tensor& y, const Tensor& h0, const Tensor& c0, const OptTensor& rmask,
                   const OptTensor& keep_h, const OptTensor& keep_c, const OptTensor& out_mask) {
      return forward<scalar_t>(GateInput{Tensor(), x, w_ih, bias.value_or(Tensor()), reversed, y}, h0, c0, w_hh,
                               w_hr, w_peep, rmask, keep_h, keep_c, out_mask, cell, act, ract, store);
    };
    return lstm_forward_by_rows<scalar_t>(x, w_hh, h0, c0, out, rmask, keep_h, keep_c, out_mask, store, run,
                                          w_hr.numel());
  });
}

std::vector<Tensor> lstm_team_proj_backward(OptTensor dy, Tensor dh_T, Tensor dc_T, Tensor gates, Tensor c_prev,
                                            OptTensor c_new, Tensor phic, Tensor w_hh, Tensor w_hr,
                                            OptTensor w_peep, OptTensor rmask, OptTensor keep_h, OptTensor keep_c,
                                            OptTensor out_mask, Cell cell, Act act, Act ract,
                                            const LoopInputs& inputs) {
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_team_proj_backward", [&] {
    return backward<scalar_t>(dy, dh_T, dc_T, gates, c_prev, c_new, phic, w_hh, w_hr, w_peep, rmask, keep_h,
                              keep_c, out_mask, cell, act, ract, inputs);
  });
}

}  // namespace lstmkit
