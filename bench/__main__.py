"""`make bench`: run every benchmark in turn; each prints its own figures and ratio against its anchor."""

from bench import cold_start, request_overhead

for benchmark in (cold_start, request_overhead):
    benchmark.main()
    print()
