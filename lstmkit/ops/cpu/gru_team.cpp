// The GRU's time loops run by a team of threads that each own a slice of the hidden units for
// the whole sequence, as lstm_team.cpp does for the LSTM cells (read it for the why): per step
// each thread multiplies its units' packed recurrent weights with the whole state, then updates
// its own units; one barrier per step. Backward: each thread turns its units' dh into their gate
// gradients, a barrier, then it computes its own columns of dh_{t-1} = d_gh W_hh.
#include "gru_cell.h"
#include "loop_gradients.h"
#include "panel_gemm.h"
#include "team.h"

namespace lstmkit {
namespace {

// `in` (team.h): xw = W_ih x_t + b_ih for all steps, or x, W_ih and b_ih for the loop to
// multiply per step.
template <typename T>
std::vector<Tensor> forward(const GateInput& in, const Tensor& h0, const Tensor& w_hh, const OptTensor& b_hh,
                            const OptTensor& rmask, const OptTensor& keep_h_t, const OptTensor& out_mask_t, Act act,
                            Act ract, bool store) {
  constexpr int64_t L = Simd<T>::lanes;
  constexpr int64_t kGates = 3;
  const bool fused = in.fused();
  const Tensor& lead = fused ? in.x : in.xw;
  const int64_t steps = lead.size(0), B = lead.size(1), G = w_hh.size(0), H = h0.size(-1);
  const int64_t I = fused ? in.x.size(2) : 0;
  const int64_t blocks = (H + L - 1) / L;
  auto opts = h0.options();
  Slots<T> h_states(store ? steps + 1 : 2, B, H, opts);
  std::memcpy(h_states[0], h0.data_ptr<T>(), sizeof(T) * B * H);
  Tensor y = in.output(steps, B, H, opts);
  Slots<T> gh(1, B, G, opts), gh_n_all(store ? steps : 1, B, H, opts), h_in_all;
  const T* rm = ptr_or_null<T>(rmask);
  if (rm) h_in_all = Slots<T>(store ? steps : 2, B, H, opts);
  Tensor panels = pooled_empty<T>({blocks * H * kGates * L}, opts);
  T* pan = panels.data_ptr<T>();
  const T* w = w_hh.data_ptr<T>();
  const GruForward<T> base{G, H, act, ract, ptr_or_null<T>(b_hh), rm, Mask<T>(keep_h_t), Mask<T>(out_mask_t)};
  const ActiveRows active = active_rows<T>(steps, B, base.out_mask, {{&base.keep_h, H}});
  const Team team = team_size(blocks, B * G * H);
  const ActiveInput<T> input(active, team.threads, H, opts);
  const InputSide<T> side(in, &active, team.threads, H, kGates, store, opts);   // where r, z, n go
  const T* b_ih = side.bias();

#pragma omp parallel num_threads(team.threads)
  {
    const Slice own(blocks, omp_get_thread_num(), team_workers(team));
    const int64_t u0 = own.unit0(L), units = own.units(H, L);
    pack_own_panels(own, w, H, H, kGates, pan, side);
    GruForward<T> cf = base;
    cf.gh = gh[0];
    if (rm) {
      mask_columns(h_states[0], rm, B, H, u0, units, h_in_all[0]);
#pragma omp barrier
    }
    alignas(64) T sums[kPanelRows * kPanelVecs * L];
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t slot = store ? t : t % 2, next = store ? t + 1 : (t + 1) % 2;
      cf.t = t;
      cf.a = side.gates_at(t);                    // the input's part in, r, z, n out
      cf.gh_n = gh_n_all[store ? t : 0];
      cf.h = h_states[slot];
      cf.h_next = h_states[next];
      cf.y = step_ptr<T>(y, in.reversed ? steps - 1 - t : t);   // y in x's order
      cf.y_row = y.stride(1);
      const T* src = rm ? h_in_all[store ? t : t % 2] : cf.h;
      cf.h_in_next = rm && t + 1 < steps ? h_in_all[store ? t + 1 : (t + 1) % 2] : nullptr;
      if (!fused && t + 1 < steps) prefetch_units(side.gates_at(t + 1), B, G, H, kGates, u0, units);
      const StepRows<T> step = step_rows(active, input, side, t, omp_get_thread_num(), src, u0, units, cf);
      for (int64_t r0 = 0; r0 < step.count; r0 += kPanelRows) {
        const int64_t rows = std::min(kPanelRows, step.count - r0);
        for (int64_t ub = own.first; ub < own.last; ++ub) {   // gh = W_hh h_in, own units' columns
          const int64_t nb = std::min(L, H - ub * L);
          if (fused) {                            // gx = W_ih x_t + b_ih, kept apart: n needs r * gh_n
            panel_gemm<T>(rows, kGates, step.x.data + r0 * step.x.stride, step.x.stride, I, side.panel(ub), sums);
            for (int64_t r = 0; r < rows; ++r) {
              T* ar = cf.a + step.of[r0 + r] * G + ub * L;
              for (int64_t g = 0; g < kGates; ++g) {
                const T* sg = sums + (r * kGates + g) * L;
                if (b_ih) {
                  for (int64_t j = 0; j < nb; ++j) ar[g * H + j] = sg[j] + b_ih[g * H + ub * L + j];
                } else {
                  copy_lanes(ar + g * H, sg, nb);
                }
              }
            }
          }
          panel_gemm<T>(rows, kGates, step.src + r0 * H, H, H, pan + ub * H * kGates * L, sums);
          for (int64_t r = 0; r < rows; ++r) {
            T* ghr = gh[0] + step.of[r0 + r] * G + ub * L;
            for (int64_t g = 0; g < kGates; ++g) {
              copy_lanes(ghr + g * H, sums + (r * kGates + g) * L, nb);
            }
          }
        }
        if (units > 0) {
          for (int64_t r = 0; r < rows; ++r) cf.units(step.of[r0 + r], u0, units);
        }
      }
#pragma omp barrier
    }
  }
  Tensor h_T = at::empty(h0.sizes(), opts);
  std::memcpy(h_T.data_ptr<T>(), h_states[store ? steps : steps % 2], sizeof(T) * B * H);
  if (!store) return {y, h_T, Tensor(), Tensor(), Tensor(), Tensor()};
  Tensor h_prev = h_states.tensor.narrow(0, 0, steps);
  return {y, h_T, side.gates(), gh_n_all.tensor, h_prev, rm ? h_in_all.tensor : h_prev};
}

template <typename T>
std::vector<Tensor> backward(const OptTensor& dy_t, const Tensor& dh_T, const Tensor& gates, const Tensor& gh_n,
                             const Tensor& h_prev, const Tensor& w_hh, const OptTensor& rmask,
                             const OptTensor& keep_h_t, const OptTensor& out_mask_t, Act act, Act ract,
                             const LoopInputs& inputs) {
  constexpr int64_t L = Simd<T>::lanes;
  const int64_t steps = gates.size(0), B = gates.size(1), G = gates.size(2), H = dh_T.size(1);
  const int64_t blocks = (H + L - 1) / L;
  auto opts = gates.options();
  const Team team = team_size(blocks, B * G * H);
  LoopGradients<T> grads(inputs, G, team.workers, opts);
  // With the weight gradients made in the loop, the biases' gradients are column sums made there
  // too, and the gate gradients are kept only for the steps of one weight-gradient sum (step t
  // in slot t % ring, as in lstm_team.cpp); otherwise every step, for the work after the loop.
  const bool in_loop = grads.present();
  const int64_t ring = in_loop ? std::min(steps, grads.steps_per_sum()) : steps;
  // GradientTiles reads whole vectors of both
  Tensor d_gx = padded_steps<T>(ring, B, G, opts), d_gh = padded_steps<T>(ring, B, G, opts);
  std::vector<double> sum_gx(in_loop ? G : 0), sum_gh(sum_gx.size());   // b_ih's and b_hh's gradients
  Tensor dh = dh_T.clone();
  Tensor panels = pooled_empty<T>({blocks * G * L}, opts);
  Tensor a_pack = pooled_empty<T>({team.threads, B, G}, opts);
  T* pan = panels.data_ptr<T>();
  const T* w = w_hh.data_ptr<T>();
  const T* rm = ptr_or_null<T>(rmask);
  GruBackward<T> base{B, G, H, act, ract, ptr_or_null<T>(dy_t), Mask<T>(keep_h_t), Mask<T>(out_mask_t)};
  const ActiveRows active = active_rows<T>(steps, B, base.out_mask, {{&base.keep_h, H}});
  base.dh = dh.data_ptr<T>();
  std::tie(base.dy, base.dy_step) = step_walk<T>(dy_t, inputs.reversed);   // dy in x's order

#pragma omp parallel num_threads(team.threads)
  {
    const int tid = omp_get_thread_num(), workers = team_workers(team);
    const Slice own(blocks, tid, workers);
    const int64_t u0 = own.unit0(L), units = own.units(H, L);
    pack_column_panels(w, G, H, own.first, own.last, pan);
    typename LoopGradients<T>::Thread mine(grads, own, Slice(grads.input_blocks(), tid, workers), H, G / H);
    T* a_packed = a_pack.data_ptr<T>() + tid * B * G;
    GruBackward<T> cb = base;
    for (int64_t t = steps - 1; t >= 0; --t) {
      cb.t = t;
      cb.g = step_ptr<T>(gates, t);
      cb.gh_n = step_ptr<T>(gh_n, t);
      cb.h_prev = step_ptr<T>(h_prev, t);
      cb.d_gx = step_ptr<T>(d_gx, t % ring);
      cb.d_gh = step_ptr<T>(d_gh, t % ring);
      if (t > 0) {                                // the previous step's saved values, fetched meanwhile
        prefetch_units(step_ptr<T>(gates, t - 1), B, G, H, 3, u0, units);
        prefetch_units(step_ptr<T>(gh_n, t - 1), B, H, H, 1, u0, units);
        prefetch_units(step_ptr<T>(h_prev, t - 1), B, H, H, 1, u0, units);
      }
      const int64_t n_rows = active.count[t];
      const int64_t* rows_of = active.of(t);
      if (units > 0) {
        for (int64_t i = 0; i < n_rows; ++i) {
          const int64_t b = rows_of[i];
          cb.units(b, u0, units);
          if (!in_loop) continue;
          for (int64_t g = 0; g < G / H; ++g) {
            const int64_t c = g * H + u0;
            add_columns(cb.d_gx + b * G + c, units, sum_gx.data() + c);
            add_columns(cb.d_gh + b * G + c, units, sum_gh.data() + c);
          }
        }
        for_inactive_rows(B, rows_of, n_rows, [&](int64_t b) {   // dh passes through unchanged
          for (int64_t g = 0; g < 3; ++g) {
            std::memset(cb.d_gx + b * G + g * H + u0, 0, sizeof(T) * units);
            std::memset(cb.d_gh + b * G + g * H + u0, 0, sizeof(T) * units);
          }
        });
      }
      if (grads.present()) mine.add_weights(cb.d_gx, cb.d_gh, t);
#pragma omp barrier
      add_product_columns(cb.d_gh, rows_of, n_rows, G, pan, own.first, own.last, H, rm, a_packed, cb.dh);
      if (grads.present()) mine.input_columns(cb.d_gx, t, rows_of, n_rows, a_packed);
    }
    if (grads.present()) mine.write();
  }
  if (!in_loop) return {d_gx, d_gh, dh};
  std::vector<Tensor> out{Tensor(), Tensor(), dh};
  for (const Tensor& g : grads.results()) out.push_back(g);
  out.push_back(column_sums<T>(sum_gx, opts));
  out.push_back(column_sums<T>(sum_gh, opts));
  return out;
}

}  // namespace

std::vector<Tensor> gru_team_forward(Tensor xw, Tensor h0, Tensor w_hh, OptTensor b_hh, OptTensor rmask,
                                     OptTensor keep_h, OptTensor out_mask, Act act, Act ract, bool store) {
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "gru_team_forward", [&] {
    return forward<scalar_t>(GateInput{xw, Tensor(), Tensor(), Tensor()}, h0, w_hh, b_hh, rmask, keep_h, out_mask,
                             act, ract, store);
  });
}

// gru_forward_steps on W_ih x_t + b_ih, multiplied inside the loop (x[T - 1 - t] at step t when
// reversed, as x.flip(0) without the copy): x [T, B, I] with a contiguous last dimension,
// W_ih [3H, I], weights in x's dtype. The saved gates come back where xw would be. y goes into
// `out` where given (check_output: e.g. one half of a bidirectional layer's output).
std::vector<Tensor> gru_forward_input_steps(Tensor x, Tensor w_ih, OptTensor b_ih, Tensor h0, Tensor w_hh,
                                            OptTensor b_hh, OptTensor rmask, OptTensor keep_h, OptTensor out_mask,
                                            std::string act, std::string ract, bool store, bool reversed,
                                            OptTensor out) {
  TORCH_CHECK(x.dim() == 3, "gru_forward_input_steps: expected x [T, B, I], got ", x.sizes());
  if (x.stride(2) != 1) x = x.contiguous();
  w_ih = w_ih.contiguous();
  check_inputs("gru_forward_input_steps", h0, {&w_hh, &w_ih}, {&b_ih, &b_hh, &rmask, &keep_h, &out_mask});
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == h0.scalar_type() && w_hh.scalar_type() == x.scalar_type() &&
                  w_ih.scalar_type() == x.scalar_type(),
              "gru_forward_input_steps: expected x and the weights on the CPU in ", h0.scalar_type(), ", got x ",
              x.scalar_type(), " on ", x.device(), ", W_ih ", w_ih.scalar_type(), ", W_hh ", w_hh.scalar_type());
  TORCH_CHECK(w_ih.dim() == 2 && w_ih.size(0) == w_hh.size(0) && w_ih.size(1) == x.size(2),
              "gru_forward_input_steps: expected W_ih [", w_hh.size(0), ", ", x.size(2), "], got ", w_ih.sizes());
  check_masks("gru_forward_input_steps", x.size(0), x.size(1), rmask, h0.size(-1),
              {{&keep_h, h0.size(-1)}, {&out_mask, 1}});
  check_output("gru_forward_input_steps", out, x, h0.size(-1));
  Tensor bias = b_ih && b_ih->defined() ? b_ih->contiguous() : Tensor();
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward_input_steps", [&] {
    auto run = [&](const Tensor& x, const Tensor& y, const Tensor& h0, const OptTensor& rmask,
                   const OptTensor& keep_h, const OptTensor& out_mask) {
      return forward<scalar_t>(GateInput{Tensor(), x, w_ih, bias, reversed, y}, h0, w_hh, b_hh, rmask, keep_h,
                               out_mask, parse_act(act), parse_act(ract), store);
    };
    const int64_t weight_bytes = w_hh.size(0) * (x.size(2) + h0.size(-1)) * int64_t(sizeof(scalar_t));
    const int chunks = batch_chunks(x.size(1), weight_bytes, store);
    if (chunks == 1) return run(x, out.value_or(Tensor()), h0, rmask, keep_h, out_mask);
    return forward_in_batch_chunks(x, out, h0.size(-1), chunks, 1, store, [&](int64_t b0, int64_t n, const Tensor& y) {
      return run(x.narrow(1, b0, n), y, h0.narrow(-2, b0, n), rows_of(rmask, 0, b0, n), rows_of(keep_h, 1, b0, n),
                 rows_of(out_mask, 1, b0, n));
    });
  });
}

std::vector<Tensor> gru_team_backward(OptTensor dy, Tensor dh_T, Tensor gates, Tensor gh_n, Tensor h_prev,
                                      Tensor w_hh, OptTensor rmask, OptTensor keep_h, OptTensor out_mask, Act act,
                                      Act ract, const LoopInputs& inputs) {
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_team_backward", [&] {
    return backward<scalar_t>(dy, dh_T, gates, gh_n, h_prev, w_hh, rmask, keep_h, out_mask, act, ract, inputs);
  });
}

}  // namespace lstmkit
