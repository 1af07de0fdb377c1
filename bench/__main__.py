"""`make bench`: run every benchmark in turn; each prints its own figures and ratio against its anchor.

The first run also embeds the benchmark corpus once (about 10 minutes on 2 cores, cached in var/bench-cache/).
`python -m bench.retrieval_scale --full` adds the 1M-chunk case (about 20 minutes, 8 GB of memory).
`python -m bench.local_tier` measures the optional local model (needs the `local` extra).
"""

from bench import (
    answer_threshold,
    cache_threshold,
    chat_load,
    cold_start,
    dashboard,
    intent_quality,
    kb_confidence,
    lake_ingest,
    lake_pipeline,
    lake_query,
    memory,
    outage,
    request_overhead,
    retrieval_scale,
    router_overhead,
    routing_cost,
    routing_policy,
    sentiment,
    sentiment_quality,
    stackfaq,
)

BENCHMARKS = (
    cold_start,
    request_overhead,
    memory,
    stackfaq,
    answer_threshold,
    cache_threshold,
    kb_confidence,
    retrieval_scale,
    chat_load,
    router_overhead,
    outage,
    routing_cost,
    routing_policy,
    lake_ingest,
    lake_pipeline,
    sentiment,
    lake_query,
    dashboard,
    sentiment_quality,
    intent_quality,  # the longest: about 35 minutes of training on 2 cores
)

for benchmark in BENCHMARKS:
    benchmark.main()
    print()
