"""`make bench`: run every benchmark in turn; each prints its own figures and ratio against its anchor.

The first run also embeds the benchmark corpus once (about 10 minutes on 2 cores, cached in var/bench-cache/).
`python -m bench.retrieval_scale --full` adds the 1M-chunk case (about 20 minutes, 8 GB of memory).
"""

from bench import answer_threshold, chat_load, cold_start, memory, request_overhead, retrieval_scale, stackfaq

for benchmark in (cold_start, request_overhead, memory, stackfaq, answer_threshold, retrieval_scale, chat_load):
    benchmark.main()
    print()
