"""`python benchmarks/bench_cpu.py [--rounds N] [--quick] [--write FILE]`: the same as `lstmkit bench`.

The benchmark itself lives in lstmkit/bench.py so that installed users can run it too."""

import sys

from lstmkit.bench import main

if __name__ == "__main__":
    sys.exit(main())
