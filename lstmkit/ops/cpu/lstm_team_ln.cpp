// The layernorm cell's loops run by a team of threads that each own a slice of the hidden units
// for the whole sequence (see lstm_team.cpp). Its three layer norms run over whole rows: over
// the 4H recurrent pre-activations, over the 4H input ones and over the H cells. Each thread
// reduces its own columns, and after a barrier every thread combines the team's partial results
// for the rows it needs. Three barriers per step: the recurrent product's statistics, the
// cell's, and the new state.
//
// The input's layer norm needs no state: all steps are normalised before the loop (forward) and
// its gradient is taken after it (backward).
#include <cmath>
#include <cstring>
#include <type_traits>

#include "lstm_cell.h"
#include "loop_gradients.h"
#include "panel_gemm.h"
#include "team.h"

namespace lstmkit {
namespace {

Tensor none() { return Tensor(); }

// Mean and sum of squared deviations of n values; merged across threads with Chan et al.'s
// formula, which stays accurate where a sum of squares would cancel.
struct Moments {
  double n = 0, mean = 0, m2 = 0;
  template <typename T> static Moments of(const T* v, int64_t count, int64_t stride, int64_t groups) {
    Moments m;
    if (count == 0 || groups == 0) return m;
    const double shift = v[0];
    double s = 0, q = 0;
    for (int64_t g = 0; g < groups; ++g) {
      const auto [sg, qg] = shifted_sums_in_double(v + g * stride, count, shift);
      s += sg;
      q += qg;
    }
    m.n = double(count * groups);
    m.mean = shift + s / m.n;
    m.m2 = std::max(0.0, q - s * s / m.n);
    return m;
  }
  void merge(const Moments& o) {
    if (o.n == 0) return;
    const double total = n + o.n, delta = o.mean - mean;
    mean += delta * o.n / total;
    m2 += o.m2 + delta * delta * n * o.n / total;
    n = total;
  }
  double rstd() const { return 1.0 / std::sqrt(m2 / n + kLayerNormEps); }
};

// A thread's own gate columns of a step's [B, G] pre-activations: gate g of row b at at(b, g),
// the thread's units from there. Either in place in a [B, G] buffer (rows G apart, gates H
// apart, from the thread's first unit) or in the thread's own compact scratch (rows 4U apart,
// gates U apart, U the most units a thread owns). The compact form keeps what the norms read
// back after the products in one contiguous block per thread: in place, a thread's columns of a
// row are four strips 2 KiB apart at H=512, which share half of the L2 cache's sets, and at
// T=100 B=64 H=512 the passes over them ran 2.5-3x slower in some processes than in others.
template <typename T> struct OwnColumns {
  T* base;
  int64_t row, gate;
  T* at(int64_t b, int64_t g) const { return base + b * row + g * gate; }
};

template <typename T>
std::vector<Tensor> forward(const GateInput& in, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                            const OptTensor& b_ih, const OptTensor& b_hh, const Tensor& gain_ih_t,
                            const Tensor& gain_hh_t, const Tensor& gain_c_t, const Tensor& bias_c_t,
                            const OptTensor& rmask,
                            const OptTensor& keep_h_t, const OptTensor& keep_c_t, const OptTensor& out_mask_t, Act act,
                            Act ract, bool store) {
  constexpr int64_t L = Simd<T>::lanes;
  constexpr int64_t kGates = 4;
  const bool fused = in.fused();   // the input's product inside the loop (team.h's GateInput)
  const Tensor& lead = fused ? in.x : in.xw;
  const int64_t steps = lead.size(0), B = lead.size(1), G = w_hh.size(0), H = c0.size(-1), P = H;
  const int64_t I = fused ? in.x.size(2) : 0;
  const int64_t blocks = (H + L - 1) / L;
  auto opts = c0.options();
  const int64_t n = store ? steps : 1;

  const LstmStates<T> states(h0, c0, steps, store);
  Tensor y = in.output(steps, B, P, opts);
  Slots<T> phic_all(n, B, H, opts), c_new_all(1, B, H, opts), h_in_all;
  // Saved for backward; without it the input is normalised in place (in xw, or in one slot
  // that every step reuses when the loop makes the input's product itself).
  Slots<T> x_hat_all = store ? Slots<T>(steps, B, G, opts) : fused ? Slots<T>(1, B, G, opts) : Slots<T>();
  Slots<T> h_hat_all(n, B, G, opts), c_hat_all(n, B, H, opts);
  Slots<T> x_rstd_all(steps, B, 1, opts), h_rstd_all(steps, B, 1, opts), c_rstd_all(steps, B, 1, opts);
  const T* rm = ptr_or_null<T>(rmask);
  if (rm) h_in_all = Slots<T>(store ? steps : 2, B, P, opts);
  Tensor panels = pooled_empty<T>({blocks * P * kGates * L}, opts);
  T* pan = panels.data_ptr<T>();
  const T* w = w_hh.data_ptr<T>();
  const Team team = team_size(blocks, B * G * P);
  const InputSide<T> side(in, nullptr, team.threads, H, kGates, store, opts);   // where the gates go
  T* x_hat = store || fused ? x_hat_all[0] : side.gates_at(0);
  // W_ih x_t goes to each thread's compact scratch (OwnColumns) where nothing keeps it for
  // backward and the loop makes it; W_hh h_in always does.
  const bool x_compact = fused && !store;
  // b_ih + b_hh, added after the norms (zeros for a layer without biases)
  Tensor bias_sum_t = at::zeros({G}, opts);
  if (b_ih && b_ih->defined()) bias_sum_t += *b_ih;
  if (b_hh && b_hh->defined()) bias_sum_t += *b_hh;
  const T* bias_sum = bias_sum_t.data_ptr<T>();
  const T *g_ih = gain_ih_t.data_ptr<T>(), *g_hh = gain_hh_t.data_ptr<T>();
  // [thread][row] partial moments of the recurrent norm's and the cells' norm's rows: two
  // buffers, since a thread may start filling the second while the others still read the first.
  // (And of the input's norm's rows, when the loop makes the input's product.)
  std::vector<Moments> partial_h(size_t(team.threads) * B), partial_c(size_t(team.threads) * B);
  std::vector<Moments> partial_x(fused ? size_t(team.threads) * B : 0);
  CellForward<T> base{G, H, P, Cell::LayerNorm, act, ract, /*proj=*/false, nullptr, gain_c_t.data_ptr<T>(),
                      bias_c_t.data_ptr<T>(), rm, Mask<T>(keep_h_t), Mask<T>(keep_c_t), Mask<T>(out_mask_t)};
  base.c_new = c_new_all[0];

#pragma omp parallel num_threads(team.threads)
  {
    const int tid = omp_get_thread_num(), size = omp_get_num_threads();
    const Slice own(blocks, tid, team_workers(team));
    const int64_t u0 = own.unit0(L), units = own.units(H, L);
    pack_own_panels(own, w, H, P, kGates, pan, side);
    if (!fused) {
      for (int64_t row = steps * B * tid / size; row < steps * B * (tid + 1) / size; ++row) {
        x_rstd_all[0][row] = normalise_row(side.gates_at(0) + row * G, x_hat + row * G, G);
      }
    }
    if (rm) mask_columns(states.h[0], rm, B, P, u0, units, h_in_all[0]);
#pragma omp barrier
    CellForward<T> cf = base;
    const int64_t width = std::max<int64_t>(1, (own.last - own.first) * L);   // OwnColumns' U
    Tensor scratch = pooled_empty<T>({x_compact ? 2 : 1, B, kGates * width}, opts);
    T* mine = scratch.data_ptr<T>();
    const OwnColumns<T> hw{mine, kGates * width, width};
    auto combined = [&](const std::vector<Moments>& partial, int64_t b) {
      Moments m = partial[b];
      for (int k = 1; k < size; ++k) m.merge(partial[k * B + b]);
      return m;
    };
    alignas(64) T sums[kPanelRows * kPanelVecs * L];
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t at_t = store ? t : 0;
      states.point(cf, t);
      cf.a = side.gates_at(t);
      cf.phic = phic_all[at_t];
      cf.c_hat = c_hat_all[at_t];
      cf.y = step_ptr<T>(y, in.reversed ? steps - 1 - t : t);   // y in x's order
      cf.y_row = y.stride(1);
      T* h_hat = h_hat_all[at_t];
      T* x_hat_t = x_hat + (store || !fused ? t : 0) * B * G;
      const OwnColumns<T> xw = x_compact ? OwnColumns<T>{mine + B * kGates * width, kGates * width, width}
                                         : OwnColumns<T>{x_hat_t + u0, G, H};
      const T* src = rm ? h_in_all[states.slot(t)] : cf.h;
      cf.h_in_next = rm && t + 1 < steps ? h_in_all[states.slot(t + 1)] : nullptr;

      if (!fused && t + 1 < steps) {              // the next step's input part and its normalised twin
        prefetch_units(side.gates_at(t + 1), B, G, H, kGates, u0, units);
        if (store) prefetch_units(x_hat + (t + 1) * B * G, B, G, H, kGates, u0, units);
      }
      // 1. W_hh h_in (and W_ih x_t, fused) for own units' four gate columns, and their moments
      // per row. The input's product goes where its normalised values will be.
      const auto xs = fused ? side.x_rows(t, tid) : typename ActiveInput<T>::Rows{nullptr, 0};
      for (int64_t r0 = 0; r0 < B; r0 += kPanelRows) {
        const int64_t rows = std::min(kPanelRows, B - r0);
        for (int64_t ub = own.first; ub < own.last; ++ub) {
          const int64_t nb = std::min(L, H - ub * L);
          auto keep = [&](const OwnColumns<T>& dst) {
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t g = 0; g < kGates; ++g) {
                copy_lanes(dst.at(r0 + r, g) + (ub - own.first) * L, sums + (r * kGates + g) * L, nb);
              }
            }
          };
          if (fused) {
            panel_gemm<T>(rows, kGates, xs.data + r0 * xs.stride, xs.stride, I, side.panel(ub), sums);
            keep(xw);
          }
          panel_gemm<T>(rows, kGates, src + r0 * P, P, P, pan + ub * P * kGates * L, sums);
          keep(hw);
        }
      }
      for (int64_t b = 0; b < B; ++b) {
        partial_h[tid * B + b] = Moments::of(hw.at(b, 0), units, hw.gate, kGates);
        if (fused) partial_x[tid * B + b] = Moments::of(xw.at(b, 0), units, xw.gate, kGates);
      }
#pragma omp barrier
      // 2. Normalise, add the input's part, run the cell; the new cells' moments per row.
      for (int64_t b = 0; b < B; ++b) {
        const Moments m = combined(partial_h, b);
        const double mean = m.mean, rstd = m.rstd();
        if (tid == 0) h_rstd_all[t][b] = T(rstd);
        // Both norms, the gains and the biases in one pass, in T (the moments are in double).
        // Stored for backward: the normalised input (in place, when the loop made it) and h_hat.
        double x_mean = 0, x_rstd = 1;
        if (fused) {
          const Moments mx = combined(partial_x, b);
          x_mean = mx.mean;
          x_rstd = mx.rstd();
          if (tid == 0) x_rstd_all[t][b] = T(x_rstd);
        }
        const T hm = T(mean), hr = T(rstd), xm = T(x_mean), xr = T(x_rstd);
        auto pass = [&](auto normalise_x, auto keep) {
          for (int64_t g = 0; g < kGates; ++g) {
            const int64_t o = b * G + g * H + u0, col = g * H + u0;
            T* ar = cf.a + o;
            T* hh = h_hat + o;
            T* xh = xw.at(b, g);
            const T* hv = hw.at(b, g);
            const T *gi = g_ih + col, *gh = g_hh + col, *bs = bias_sum + col;
#pragma omp simd
            for (int64_t j = 0; j < units; ++j) {
              const T xn = normalise_x ? (xh[j] - xm) * xr : xh[j];
              const T hn = (hv[j] - hm) * hr;
              if (keep) {
                if (normalise_x) xh[j] = xn;
                hh[j] = hn;
              }
              ar[j] = xn * gi[j] + hn * gh[j] + bs[j];
            }
          }
        };
        using yes = std::true_type;
        using no = std::false_type;
        if (fused && store) pass(yes(), yes());
        else if (fused) pass(yes(), no());
        else if (store) pass(no(), yes());
        else pass(no(), no());
        cf.update_cell(b, u0, units);
      }
      for (int64_t b = 0; b < B; ++b) partial_c[tid * B + b] = Moments::of(cf.c_new + b * H + u0, units, 0, 1);
#pragma omp barrier
      // 3. Normalise the cells, then the outputs and new states.
      for (int64_t b = 0; b < B; ++b) {
        const Moments m = combined(partial_c, b);
        const double mean = m.mean, rstd = m.rstd();
        if (tid == 0) c_rstd_all[t][b] = T(rstd);
        const T* cn = cf.c_new + b * H + u0;
        T* ch = cf.c_hat + b * H + u0;
#pragma omp simd
        for (int64_t j = 0; j < units; ++j) ch[j] = T((cn[j] - mean) * rstd);
        cf.emit(b, u0, units);
      }
#pragma omp barrier
    }
  }

  if (!store) return states.results(y, h0, c0, {});
  Tensor h_in_saved = rm ? h_in_all.tensor : states.h_prev();
  return states.results(y, h0, c0, {side.gates(), states.c_prev(), none(), phic_all.tensor, h_in_saved, none(),
                             x_hat_all.tensor, x_rstd_all.tensor, h_hat_all.tensor, h_rstd_all.tensor, c_hat_all.tensor,
                             c_rstd_all.tensor});
}

// sum_j d_j gain_j and sum_j d_j gain_j hat_j over `count` values in `groups` groups `stride`
// apart: the two sums a layer norm's backward needs, for one thread's columns.
template <typename T> std::pair<double, double> gain_sums(const T* d, const T* gain, const T* hat, int64_t count,
                                                          int64_t stride, int64_t groups) {
  double s = 0, sh = 0;
  for (int64_t g = 0; g < groups; ++g) {
    const auto [sg, shg] = gain_sums_in_double(d + g * stride, gain + g * stride, hat + g * stride, count);
    s += sg;
    sh += shg;
  }
  return {s, sh};
}

// Both norms' sums over a row's gate gradients d, in one pass with the column sums the loop makes
// beside the weight gradients: sum_j d_j g_hh_j and sum_j d_j g_hh_j h_hat_j (the recurrent
// norm's gain sums), the same with g_ih and x_hat (the input's), and per column d, d h_hat and
// d x_hat added to sum, sum_hh and sum_ih. All in double; add() takes a row's columns a piece at
// a time (a thread's units of each gate).
struct NormSums {
  using D = Simd<double>::vec;
  static constexpr int64_t L = Simd<double>::lanes;
  D s_h{}, sh_h{}, s_x{}, sx_x{};
  double tail[4] = {0, 0, 0, 0};

  template <typename T>
  void add(const T* d, const T* g_hh, const T* hh, const T* g_ih, const T* xh, int64_t n, double* sum,
           double* sum_hh, double* sum_ih) {
    typedef T Part __attribute__((vector_size(L * sizeof(T))));
    auto load = [](const T* p) {
      Part v;
      std::memcpy(&v, p, sizeof(Part));
      return __builtin_convertvector(v, D);
    };
    auto add_to = [](double* p, D v) {
      D a;
      std::memcpy(&a, p, sizeof(D));
      a += v;
      std::memcpy(p, &a, sizeof(D));
    };
    int64_t j = 0;
    for (; j + L <= n; j += L) {
      const D dj = load(d + j), h = load(hh + j), x = load(xh + j);
      const D dgh = dj * load(g_hh + j), dgx = dj * load(g_ih + j);
      s_h += dgh;
      sh_h += dgh * h;
      s_x += dgx;
      sx_x += dgx * x;
      add_to(sum + j, dj);
      add_to(sum_hh + j, dj * h);
      add_to(sum_ih + j, dj * x);
    }
    for (; j < n; ++j) {
      const double dj = d[j], dgh = dj * g_hh[j], dgx = dj * g_ih[j];
      tail[0] += dgh;
      tail[1] += dgh * hh[j];
      tail[2] += dgx;
      tail[3] += dgx * xh[j];
      sum[j] += dj;
      sum_hh[j] += dj * hh[j];
      sum_ih[j] += dj * xh[j];
    }
  }
  static double total(const D& v, double t) {
    for (int64_t i = 0; i < L; ++i) t += v[i];
    return t;
  }
  std::pair<double, double> recurrent() const { return {total(s_h, tail[0]), total(sh_h, tail[1])}; }
  std::pair<double, double> input() const { return {total(s_x, tail[2]), total(sx_x, tail[3])}; }
};

template <typename T>
std::vector<Tensor> backward(const OptTensor& dy_t, const Tensor& dh_T, const Tensor& dc_T, const Tensor& gates,
                             const Tensor& c_prev, const Tensor& phic, const Tensor& x_hat, const Tensor& x_rstd,
                             const Tensor& h_hat, const Tensor& h_rstd, const Tensor& c_hat, const Tensor& c_rstd,
                             const Tensor& w_hh, const Tensor& gain_ih_t, const Tensor& gain_hh_t,
                             const Tensor& gain_c_t, const OptTensor& rmask, const OptTensor& keep_h_t,
                             const OptTensor& keep_c_t, const OptTensor& out_mask_t, Act act, Act ract,
                             const LoopInputs& inputs) {
  constexpr int64_t L = Simd<T>::lanes;
  constexpr int64_t kGates = 4;
  const int64_t steps = gates.size(0), B = gates.size(1), G = gates.size(2), H = phic.size(2), P = H;
  const int64_t blocks = (H + L - 1) / L;
  auto opts = gates.options();
  const Team team = team_size(blocks, B * G * P);
  LoopGradients<T> grads(inputs, G, team.workers, opts);
  // With the weight gradients made in the loop, the bias and gain gradients are column sums made
  // there too, and the gate gradients before and after the norms need one step at a time: no
  // [T, B, G] buffers written, then read again by reductions after the loop.
  const bool in_loop = grads.present();     // the input's norm too, step by step
  const int64_t kept_steps = in_loop ? 1 : steps;
  // In the loop, each thread keeps the gate gradients of its own columns in a compact block of
  // its own (the forward's OwnColumns, for the same reason); after it, every step's [B, G].
  Tensor d_pre = in_loop ? Tensor() : pooled_empty<T>({steps, B, G}, opts);
  Tensor d_c_norm = pooled_empty<T>({kept_steps, B, H}, opts);
  // Those column sums (in_loop only): of d_pre, d_pre * h_hat, d_pre * x_hat [G]; of d_c_norm
  // and d_c_norm * c_hat [H].
  std::vector<double> sum_d(in_loop ? G : 0), sum_d_hh(sum_d.size()), sum_d_ih(sum_d.size());
  std::vector<double> sum_dc(in_loop ? H : 0), sum_dc_c(sum_dc.size());
  Tensor dh = dh_T.clone(), dc = dc_T.clone();
  Tensor dm = at::empty({B, H}, opts), dcn = at::empty({B, H}, opts);
  Tensor panels = pooled_empty<T>({blocks * G * L}, opts);
  // The gradients before the two norms (GradientTiles reads whole vectors of them). With the
  // gradients made in the loop only the steps of one weight-gradient sum are kept, step t in
  // slot t % ring (a sum starts at a multiple of ring, so its steps lie in order): no [T, B, G]
  // buffers to fault in; otherwise every step, for the GEMMs after the loop.
  const int64_t ring = in_loop ? std::min(steps, grads.steps_per_sum()) : steps;
  Tensor d_hw = padded_steps<T>(ring, B, G, opts), d_xw = padded_steps<T>(ring, B, G, opts);
  Tensor a_pack = pooled_empty<T>({team.threads, B, G}, opts);
  using Sums = std::pair<double, double>;            // [thread][row], one buffer per norm (see forward)
  std::vector<Sums> partial_c(size_t(team.threads) * B), partial_h(size_t(team.threads) * B),
      partial_x(in_loop ? size_t(team.threads) * B : 0);
  std::vector<int64_t> all_rows(B);
  for (int64_t b = 0; b < B; ++b) all_rows[b] = b;
  T* pan = panels.data_ptr<T>();
  const T* w = w_hh.data_ptr<T>();
  const T* rm = ptr_or_null<T>(rmask);
  const T *g_ih = gain_ih_t.data_ptr<T>(), *g_hh = gain_hh_t.data_ptr<T>(), *g_c = gain_c_t.data_ptr<T>();
  T* dh_p = dh.data_ptr<T>();
  CellBackward<T> base{B, G, H, P, Cell::LayerNorm, act, ract, nullptr, g_c, ptr_or_null<T>(dy_t),
                       Mask<T>(keep_h_t), Mask<T>(keep_c_t), Mask<T>(out_mask_t)};
  base.dm = dm.data_ptr<T>();
  base.dc = dc.data_ptr<T>();
  std::tie(base.dy, base.dy_step) = step_walk<T>(dy_t, inputs.reversed);   // dy in x's order
  base.dcn = dcn.data_ptr<T>();

#pragma omp parallel num_threads(team.threads)
  {
    const int tid = omp_get_thread_num(), size = omp_get_num_threads(), workers = team_workers(team);
    const Slice own(blocks, tid, workers);
    const int64_t u0 = own.unit0(L), units = own.units(H, L);
    pack_column_panels(w, G, P, own.first, own.last, pan);
    typename LoopGradients<T>::Thread mine(grads, own, Slice(grads.input_blocks(), tid, workers), H, kGates);
    T* a_packed = a_pack.data_ptr<T>() + tid * B * G;
    auto combined = [&](const std::vector<Sums>& partial, int64_t b) {
      double s = 0, sh = 0;
      for (int k = 0; k < size; ++k) {
        s += partial[k * B + b].first;
        sh += partial[k * B + b].second;
      }
      return std::make_pair(s, sh);
    };
    CellBackward<T> cb = base;
    const int64_t width = std::max<int64_t>(1, (own.last - own.first) * L);
    Tensor own_d = in_loop ? pooled_empty<T>({B, kGates * width}, opts) : Tensor();
    if (in_loop) {
      cb.d_pre = own_d.data_ptr<T>();
      cb.d_row = kGates * width;
      cb.d_gate = width;
      cb.d_unit0 = u0;
    }
    for (int64_t t = steps - 1; t >= 0; --t) {
      cb.t = t;
      cb.g = step_ptr<T>(gates, t);
      cb.phic = step_ptr<T>(phic, t);
      cb.c_prev = step_ptr<T>(c_prev, t);
      if (!in_loop) cb.d_pre = step_ptr<T>(d_pre, t);
      if (t > 0) {                                // the previous step's saved values, fetched meanwhile
        prefetch_units(step_ptr<T>(gates, t - 1), B, G, H, kGates, u0, units);
        prefetch_units(step_ptr<T>(h_hat, t - 1), B, G, H, kGates, u0, units);
        if (in_loop) prefetch_units(step_ptr<T>(x_hat, t - 1), B, G, H, kGates, u0, units);
        prefetch_units(step_ptr<T>(c_prev, t - 1), B, H, H, 1, u0, units);
        prefetch_units(step_ptr<T>(phic, t - 1), B, H, H, 1, u0, units);
        prefetch_units(step_ptr<T>(c_hat, t - 1), B, H, H, 1, u0, units);
      }
      cb.dphi = step_ptr<T>(d_c_norm, in_loop ? 0 : t);
      const T* ch = step_ptr<T>(c_hat, t);
      const T* hh = step_ptr<T>(h_hat, t);
      const T* c_rs = step_ptr<T>(c_rstd, t);
      const T* h_rs = step_ptr<T>(h_rstd, t);
      const T* xh = step_ptr<T>(x_hat, t);
      const T* x_rs = step_ptr<T>(x_rstd, t);
      T* dhw = step_ptr<T>(d_hw, t % ring);
      T* dxw = step_ptr<T>(d_xw, t % ring);
      // 1. Up to the gradient at the cells' norm; its sums over own units.
      for (int64_t b = 0; b < B; ++b) {
        cb.split_dh(dh_p, cb.dm, b, u0, units);
        cb.through_output(b, u0, units);
        partial_c[tid * B + b] = gain_sums(cb.dphi + b * H + u0, g_c + u0, ch + b * H + u0, units, 0, 1);
        if (in_loop) {
          add_columns(cb.dphi + b * H + u0, ch + b * H + u0, units, sum_dc.data() + u0, sum_dc_c.data() + u0);
        }
      }
#pragma omp barrier
      // 2. Through the cells' norm and the cell; the sums for the recurrent norm's gradient.
      for (int64_t b = 0; b < B; ++b) {
        const auto [s, sh] = combined(partial_c, b);
        // The sums in double, the terms in T: for one unit d g - mean(d g) still cancels exactly.
        const T mean_d = T(s / H), mean_dh = T(sh / H), r = c_rs[b];
        const T* dph = cb.dphi + b * H + u0;
        const T* chr = ch + b * H + u0;
        T* dcnr = cb.dcn + b * H + u0;
#pragma omp simd
        for (int64_t j = 0; j < units; ++j) dcnr[j] += r * (dph[j] * g_c[u0 + j] - mean_d - chr[j] * mean_dh);
        cb.through_cell(b, u0, units);
        if (in_loop) {
          NormSums sums;
          for (int64_t g = 0; g < kGates; ++g) {
            const int64_t c = g * H + u0, o = b * G + c;
            sums.add(cb.d_at(b, g, u0), g_hh + c, hh + o, g_ih + c, xh + o, units, sum_d.data() + c,
                     sum_d_hh.data() + c, sum_d_ih.data() + c);
          }
          partial_h[tid * B + b] = sums.recurrent();
          partial_x[tid * B + b] = sums.input();
        } else {
          partial_h[tid * B + b] = gain_sums(cb.d_pre + b * G + u0, g_hh + u0, hh + b * G + u0, units, H, kGates);
        }
      }
#pragma omp barrier
      // 3. The gradients before the recurrent norm (and the input's, in the loop), own columns.
      auto before_norm = [&](const std::vector<Sums>& partial, const T* gain, const T* hat, const T* rstd, T* out) {
        for (int64_t b = 0; b < B; ++b) {
          const auto [s, sh] = combined(partial, b);
          const T mean_d = T(s / G), mean_dh = T(sh / G), r = rstd[b];
          for (int64_t g = 0; g < kGates; ++g) {
            const int64_t o = b * G + g * H + u0;
            const T *dp = cb.d_at(b, g, u0), *hr = hat + o, *gg = gain + g * H + u0;
            T* ob = out + o;
#pragma omp simd
            for (int64_t j = 0; j < units; ++j) ob[j] = r * (dp[j] * gg[j] - mean_d - hr[j] * mean_dh);
          }
        }
      };
      before_norm(partial_h, g_hh, hh, h_rs, dhw);
      if (in_loop) {
        before_norm(partial_x, g_ih, xh, x_rs, dxw);
        mine.add_weights(dxw, dhw, t);
      }
#pragma omp barrier
      add_product_columns(dhw, all_rows.data(), B, G, pan, own.first, own.last, P, rm, a_packed, dh_p);
      if (in_loop) mine.input_columns(dxw, t, all_rows.data(), B, a_packed);
    }
    if (in_loop) mine.write();
  }
  if (in_loop) {
    std::vector<Tensor> out{none(), none(), none(), none(), none(), dh, dc};
    for (const Tensor& g : grads.results()) out.push_back(g);
    out.push_back(none());                        // dW_hr: no projection
    // the biases', ln_gain_ih's, ln_gain_hh's, ln_gain_c's and ln_bias_c's gradients
    for (const auto* sums : {&sum_d, &sum_d_ih, &sum_d_hh, &sum_dc_c, &sum_dc}) {
      out.push_back(column_sums<T>(*sums, opts));
    }
    return out;
  }
  std::vector<Tensor> out{d_pre, d_xw, d_hw, none(), d_c_norm, dh, dc};
#pragma omp parallel num_threads(team.threads)
  {
    // The input's norm, every step at once: rows split among the threads.
    const int tid = omp_get_thread_num(), size = omp_get_num_threads();
    const T* dp = d_pre.data_ptr<T>();
    const T* xh = x_hat.data_ptr<T>();
    const T* xr = x_rstd.data_ptr<T>();
    T* dx = d_xw.data_ptr<T>();
    for (int64_t row = steps * B * tid / size; row < steps * B * (tid + 1) / size; ++row) {
      normalise_row_backward(dp + row * G, g_ih, xh + row * G, xr[row], dx + row * G, G);
    }
  }
  return out;
}

}  // namespace

std::vector<Tensor> lstm_team_ln_forward(Tensor xw, Tensor h0, Tensor c0, Tensor w_hh, OptTensor b_ih, OptTensor b_hh,
                                         OptTensor gain_ih, OptTensor gain_hh, OptTensor gain_c, OptTensor bias_c,
                                         OptTensor rmask, OptTensor keep_h, OptTensor keep_c, OptTensor out_mask,
                                         Act act, Act ract, bool store) {
  TORCH_CHECK(gain_ih && gain_hh && gain_c && bias_c, "the layernorm cell needs its four layer-norm weights");
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "lstm_team_ln_forward", [&] {
    return forward<scalar_t>(GateInput{xw, Tensor(), Tensor(), Tensor()}, h0, c0, w_hh, b_ih, b_hh, *gain_ih,
                             *gain_hh, *gain_c, *bias_c, rmask, keep_h, keep_c, out_mask, act, ract, store);
  });
}

// The same with x [T, B, I] and W_ih [G, I], the input's product made inside the loop.
std::vector<Tensor> lstm_team_ln_forward_from_input(Tensor x, Tensor w_ih, Tensor h0, Tensor c0, Tensor w_hh,
                                                    OptTensor b_ih, OptTensor b_hh, OptTensor gain_ih,
                                                    OptTensor gain_hh, OptTensor gain_c, OptTensor bias_c,
                                                    OptTensor rmask, OptTensor keep_h, OptTensor keep_c,
                                                    OptTensor out_mask, Act act, Act ract, bool store,
                                                    bool reversed, OptTensor out) {
  TORCH_CHECK(gain_ih && gain_hh && gain_c && bias_c, "the layernorm cell needs its four layer-norm weights");
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_team_ln_forward_from_input", [&] {
    auto run = [&](const Tensor& x, const Tensor& y, const Tensor& h0, const Tensor& c0, const OptTensor& rmask,
                   const OptTensor& keep_h, const OptTensor& keep_c, const OptTensor& out_mask) {
      return forward<scalar_t>(GateInput{Tensor(), x, w_ih, Tensor(), reversed, y}, h0, c0, w_hh, b_ih, b_hh,
                               *gain_ih, *gain_hh, *gain_c, *bias_c, rmask, keep_h, keep_c, out_mask, act, ract,
                               store);
    };
    return lstm_forward_by_rows<scalar_t>(x, w_hh, h0, c0, out, rmask, keep_h, keep_c, out_mask, store, run);
  });
}

std::vector<Tensor> lstm_team_ln_backward(OptTensor dy, Tensor dh_T, Tensor dc_T, Tensor gates, Tensor c_prev,
                                          Tensor phic, OptTensor x_hat, OptTensor x_rstd, OptTensor h_hat,
                                          OptTensor h_rstd, OptTensor c_hat, OptTensor c_rstd, Tensor w_hh,
                                          OptTensor gain_ih, OptTensor gain_hh, OptTensor gain_c, OptTensor rmask,
                                          OptTensor keep_h, OptTensor keep_c, OptTensor out_mask, Act act,
                                          Act ract, const LoopInputs& inputs) {
  TORCH_CHECK(x_hat && x_rstd && h_hat && h_rstd && c_hat && c_rstd && gain_ih && gain_hh && gain_c,
              "the layernorm cell's backward needs its saved norms and gains");
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_team_ln_backward", [&] {
    return backward<scalar_t>(dy, dh_T, dc_T, gates, c_prev, phic, *x_hat, *x_rstd, *h_hat, *h_rstd, *c_hat,
                              *c_rstd, w_hh, *gain_ih, *gain_hh, *gain_c, rmask, keep_h, keep_c, out_mask, act,
                              ract, inputs);
  });
}

}  // namespace lstmkit
