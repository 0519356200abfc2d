// The LSTM cells with a projection (h = W_hr (o * phi(c)), P outputs from H cells; vanilla,
// peephole, cifg) run by a team of threads, as lstm_team.cpp does without one. Each thread
// owns a slice of the H units and a slice of the P outputs. Two barriers per step:
//   forward   own units: gates and cells, h_core = o * phi(c)    | barrier
//             own outputs: h~ = h_core W_hr^T, blended into h    | barrier
//   backward  own outputs: dh_t split into dh~ and the carried part  | barrier
//             own units: dh_core = dh~ W_hr, then the cell's gradients  | barrier
//             own outputs: dh_{t-1} += d_pre W_hh
#include "lstm_cell.h"
#include "panel_gemm.h"
#include "team.h"

namespace lstmkit {
namespace {

Tensor none() { return Tensor(); }

// xw [T, B, G]: the steps by their stride (a batch chunk's rows of a larger one), each step's
// rows G apart. y_out, where defined: where y goes ([T, B, P] rows by its strides).
template <typename T>
std::vector<Tensor> forward(Tensor xw, const Tensor& h0, const Tensor& c0, const Tensor& w_hh, const Tensor& w_hr,
                            const OptTensor& w_peep, const OptTensor& rmask, const OptTensor& keep_h_t,
                            const OptTensor& keep_c_t, const OptTensor& out_mask_t, Cell cell, Act act, Act ract,
                            bool store, const Tensor& y_out) {
  constexpr int64_t L = Simd<T>::lanes;
  const int64_t steps = xw.size(0), B = xw.size(1), G = xw.size(2), H = c0.size(-1), P = h0.size(-1);
  const int64_t gates = G / H, unit_blocks = (H + L - 1) / L, out_blocks = (P + L - 1) / L;
  const bool peep = cell == Cell::Peephole;
  auto opts = xw.options();
  const int64_t n = store ? steps : 1;

  const LstmStates<T> states(h0, c0, steps, store);
  Tensor y = y_out.defined() ? y_out : at::empty({steps, B, P}, opts);
  Slots<T> phic_all(n, B, H, opts), c_new_all(peep && store ? steps : 1, B, H, opts), h_core_all(n, B, H, opts);
  Slots<T> h_in_all;
  const T* rm = ptr_or_null<T>(rmask);
  if (rm) h_in_all = Slots<T>(store ? steps : 2, B, P, opts);
  const Tensor w_hr_t = w_hr.t().contiguous();   // [H, P]: the projection's columns are outputs
  Tensor gate_panels = pooled_empty<T>({unit_blocks * P * gates * L}, opts);
  Tensor out_panels = pooled_empty<T>({out_blocks * H * L}, opts);
  const Team team = team_size(unit_blocks, B * G * P);
  Tensor a_pack = pooled_empty<T>({team.threads, B, H}, opts);
  T *gp = gate_panels.data_ptr<T>(), *op = out_panels.data_ptr<T>(), *xw_p = xw.data_ptr<T>();
  const CellForward<T> base{G, H, P, cell, act, ract, /*proj=*/true, ptr_or_null<T>(w_peep), nullptr, nullptr,
                            rm, Mask<T>(keep_h_t), Mask<T>(keep_c_t), Mask<T>(out_mask_t)};

#pragma omp parallel num_threads(team.threads)
  {
    const int tid = omp_get_thread_num();
    const Slice units(unit_blocks, tid, team_workers(team)), outs(out_blocks, tid, team_workers(team));
    const int64_t u0 = units.unit0(L), nu = units.units(H, L);
    const int64_t p0 = outs.unit0(L), np = outs.units(P, L);
    pack_gate_panels(w_hh.data_ptr<T>(), H, P, gates, units.first, units.last, gp);
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
      cf.a = xw_p + t * xw.stride(0);
      cf.c_new = c_new_all[peep && store ? t : 0];
      cf.phic = phic_all[at_t];
      cf.h_core = h_core_all[at_t];
      cf.y = step_ptr<T>(y, t);
      cf.y_row = y.stride(1);
      const T* src = rm ? h_in_all[states.slot(t)] : cf.h;
      T* h_in_next = rm && t + 1 < steps ? h_in_all[states.slot(t + 1)] : nullptr;
      if (t + 1 < steps) prefetch_units(xw_p + (t + 1) * xw.stride(0), B, G, H, gates, u0, nu);
      // Own units: gates, cells and h_core.
      for (int64_t r0 = 0; r0 < B; r0 += kPanelRows) {
        const int64_t rows = std::min(kPanelRows, B - r0);
        for (int64_t ub = units.first; ub < units.last; ++ub) {
          const int64_t nb = std::min(L, H - ub * L);
          panel_gemm<T>(rows, gates, src + r0 * P, P, P, gp + ub * P * gates * L, sums);
          for (int64_t r = 0; r < rows; ++r) {
            T* ar = cf.a + (r0 + r) * G + ub * L;
            for (int64_t g = 0; g < gates; ++g) {
              const T* s = sums + (r * gates + g) * L;
              for (int64_t j = 0; j < nb; ++j) ar[g * H + j] += s[j];
            }
          }
        }
        if (nu > 0) {
          for (int64_t r = 0; r < rows; ++r) cf.units(r0 + r, u0, nu);
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
  return states.results(y, h0, c0, {xw, states.c_prev(), peep ? c_new_all.tensor : none(), phic_all.tensor,
                             h_in_saved, h_core_all.tensor});
}

template <typename T>
std::vector<Tensor> backward(const OptTensor& dy_t, const Tensor& dh_T, const Tensor& dc_T, const Tensor& gates,
                             const Tensor& c_prev, const Tensor& phic, const Tensor& w_hh, const Tensor& w_hr,
                             const OptTensor& w_peep, const OptTensor& rmask, const OptTensor& keep_h_t,
                             const OptTensor& keep_c_t, const OptTensor& out_mask_t, Cell cell, Act act, Act ract) {
  constexpr int64_t L = Simd<T>::lanes;
  const int64_t steps = gates.size(0), B = gates.size(1), G = gates.size(2), H = phic.size(2), P = dh_T.size(1);
  const int64_t unit_blocks = (H + L - 1) / L, out_blocks = (P + L - 1) / L;
  auto opts = gates.options();
  Tensor d_pre = pooled_empty<T>({steps, B, G}, opts), dh_new_all = pooled_empty<T>({steps, B, P}, opts);
  Tensor dh = dh_T.clone(), dc = dc_T.clone();
  Tensor dm = at::empty({B, H}, opts), dcn = at::empty({B, H}, opts), dphi = at::empty({B, H}, opts);
  Tensor hh_panels = pooled_empty<T>({out_blocks * G * L}, opts);
  Tensor hr_panels = pooled_empty<T>({unit_blocks * P * L}, opts);
  const Team team = team_size(unit_blocks, B * G * P);
  Tensor a_pack = pooled_empty<T>({team.threads, B, std::max(G, P)}, opts);
  const T* rm = ptr_or_null<T>(rmask);
  T *dh_p = dh.data_ptr<T>(), *hhp = hh_panels.data_ptr<T>(), *hrp = hr_panels.data_ptr<T>();
  CellBackward<T> base{B, G, H, P, cell, act, ract, ptr_or_null<T>(w_peep), nullptr, ptr_or_null<T>(dy_t),
                       Mask<T>(keep_h_t), Mask<T>(keep_c_t), Mask<T>(out_mask_t)};
  base.dm = dm.data_ptr<T>();
  base.dc = dc.data_ptr<T>();
  std::tie(base.dy, base.dy_step) = step_walk<T>(dy_t, false);
  base.dcn = dcn.data_ptr<T>();
  base.dphi = dphi.data_ptr<T>();

#pragma omp parallel num_threads(team.threads)
  {
    const int tid = omp_get_thread_num();
    const Slice units(unit_blocks, tid, team_workers(team)), outs(out_blocks, tid, team_workers(team));
    const int64_t u0 = units.unit0(L), nu = units.units(H, L);
    const int64_t p0 = outs.unit0(L), np = outs.units(P, L);
    pack_column_panels(w_hh.data_ptr<T>(), G, P, outs.first, outs.last, hhp);
    pack_column_panels(w_hr.data_ptr<T>(), P, H, units.first, units.last, hrp);
    T* a_packed = a_pack.data_ptr<T>() + tid * B * std::max(G, P);
    std::vector<int64_t> all_rows(B);
    for (int64_t b = 0; b < B; ++b) all_rows[b] = b;
    CellBackward<T> cb = base;
    for (int64_t t = steps - 1; t >= 0; --t) {
      cb.point(t, gates, phic, c_prev, d_pre);
      T* dh_new = step_ptr<T>(dh_new_all, t);
      if (np > 0) {
        for (int64_t b = 0; b < B; ++b) cb.split_dh(dh_p, dh_new, b, p0, np);
      }
#pragma omp barrier
      if (nu > 0) {                               // dh_core = dh~ W_hr, own units; then the cell
        for (int64_t b = 0; b < B; ++b) std::memset(cb.dm + b * H + u0, 0, sizeof(T) * nu);
        add_product_columns(dh_new, all_rows.data(), B, P, hrp, units.first, units.last, H, (const T*)nullptr,
                            a_packed, cb.dm);
        for (int64_t b = 0; b < B; ++b) cb.units(b, u0, nu);
      }
#pragma omp barrier
      add_product_columns(cb.d_pre, all_rows.data(), B, G, hhp, outs.first, outs.last, P, rm, a_packed, dh_p);
    }
  }
  return {d_pre, none(), none(), dh_new_all, none(), dh, dc};
}

}  // namespace

std::vector<Tensor> lstm_team_proj_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, Tensor w_hr,
                                           OptTensor w_peep, OptTensor rmask, OptTensor keep_h, OptTensor keep_c,
                                           OptTensor out_mask, Cell cell, Act act, Act ract, bool store) {
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "lstm_team_proj_forward", [&] {
    // Inference of a small layer splits the batch among the threads (team.h's batch_chunks).
    // Training keeps the unit split: its backward leaves dx and the weight gradients to GEMMs
    // after the loop, and split (GEMMs over each chunk's rows, its saved gates copied whole)
    // it trained in 1.02-1.03 of the time at T=50 B=32 H=128 and 1.01 at H=256, paired.
    const int64_t weight_bytes = (w_hh.numel() + w_hr.numel()) * int64_t(sizeof(scalar_t));
    const int chunks = store ? 1 : batch_chunks(xw.size(1), weight_bytes, store);
    if (chunks == 1) {
      return forward<scalar_t>(xw, h0, c0, w_hh, w_hr, w_peep, rmask, keep_h, keep_c, out_mask, cell, act, ract,
                               store, Tensor());
    }
    return forward_in_batch_chunks(xw, OptTensor(), h0.size(-1), chunks, 2, store,
                                   [&](int64_t b0, int64_t n, const Tensor& y) {
      return forward<scalar_t>(xw.narrow(1, b0, n), h0.narrow(-2, b0, n), c0.narrow(-2, b0, n), w_hh, w_hr, w_peep,
                               rows_of(rmask, 0, b0, n), rows_of(keep_h, 1, b0, n), rows_of(keep_c, 1, b0, n),
                               rows_of(out_mask, 1, b0, n), cell, act, ract, store, y);
    });
  });
}

std::vector<Tensor> lstm_team_proj_backward(OptTensor dy, Tensor dh_T, Tensor dc_T, Tensor gates, Tensor c_prev,
                                            Tensor phic, Tensor w_hh, Tensor w_hr, OptTensor w_peep, OptTensor rmask,
                                            OptTensor keep_h, OptTensor keep_c, OptTensor out_mask, Cell cell,
                                            Act act, Act ract) {
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_team_proj_backward", [&] {
    return backward<scalar_t>(dy, dh_T, dc_T, gates, c_prev, phic, w_hh, w_hr, w_peep, rmask, keep_h, keep_c,
                              out_mask, cell, act, ract);
  });
}

}  // namespace lstmkit
