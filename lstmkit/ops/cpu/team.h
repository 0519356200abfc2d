// A team of threads that lives for a whole sequence (one OpenMP parallel region per call, an
// OpenMP barrier between steps): how many threads, and which blocks of units each one owns.
#pragma once

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace lstmkit {

// Below this many multiply-adds per step, waking a second thread and waiting at the barrier
// costs more than the thread saves.
constexpr int64_t kMinTeamWork = int64_t(1) << 17;

inline int team_size(int64_t blocks, int64_t work_per_step) {
  if (work_per_step < kMinTeamWork) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), blocks)));
}

// The blocks [first, last) that thread tid of a team owns.
struct Slice {
  int64_t first, last;
  Slice(int64_t blocks, int tid, int team) : first(blocks * tid / team), last(blocks * (tid + 1) / team) {}
};

}  // namespace lstmkit
