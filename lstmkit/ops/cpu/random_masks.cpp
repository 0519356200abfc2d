// 0/1 masks for zoneout and recurrent dropout, drawn from a counter-based generator: element i
// of a mask is 1 when the top 24 bits of SplitMix64's output for state seed + (i + 1) gamma
// (Steele et al., 2014), as a number in [0, 1), fall below the rate. Every element is
// independent of the others and of the thread that draws it, so the draw runs in parallel and
// vectorises; the seed comes from torch's generator, so torch.manual_seed makes runs repeat.
// torch's own uniform_ on the CPU takes about 3 ns an element, a fifth of an LSTM step's time
// at small sizes.
#include "common.h"

namespace lstmkit {
namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

// SplitMix64's output function of a state.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <typename T> void fill(T* out, int64_t n, double rate, uint64_t seed) {
  // u < rate with u = top24 / 2^24  <=>  top24 < rate * 2^24, compared in integers.
  const uint64_t threshold = static_cast<uint64_t>(rate * double(1 << 24));
  at::parallel_for(0, n, 1 << 14, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      out[i] = (mix64(seed + (uint64_t(i) + 1) * kGamma) >> 40) < threshold ? T(1) : T(0);
    }
  });
}

}  // namespace

// A new CPU tensor of `sizes` in like's dtype, 1 with probability `rate` (0 <= rate <= 1), else 0.
Tensor bernoulli_mask(std::vector<int64_t> sizes, double rate, int64_t seed, const Tensor& like) {
  TORCH_CHECK(rate >= 0.0 && rate <= 1.0, "bernoulli_mask: expected a rate in [0, 1], got ", rate);
  Tensor out = at::empty(sizes, like.options().device(at::kCPU));
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "bernoulli_mask", [&] {
    fill<scalar_t>(out.data_ptr<scalar_t>(), out.numel(), rate, static_cast<uint64_t>(seed));
  });
  return out;
}

}  // namespace lstmkit
