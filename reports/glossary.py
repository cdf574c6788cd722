"""What the words of a simulation report mean: hover text on the summary table's headers, and the legend of
terms under the tables. One place, so the table, the legend and the figures say the same thing."""

# summary-table header -> what the column holds (hover text)
HEADER_TO_HELP = {
    "Configuration": "The allocator spec as given on the command line; resolved values are in config.json.",
    "Cost model": "Where step times came from: a profile calibrated on a GPU, or a roofline estimate from the "
    "GPU's datasheet peaks.",
    "Requests (finished / total)": "Requests that finished, of all requests in the trace (rejected ones "
    "included in the total).",
    "Rejected": "Requests refused at arrival because they could never be served (see Terms and the table of "
    "reasons).",
    "Throughput (requests/s)": "Finished requests per second, from the first arrival to the last finish.",
    "Output tokens/s": "Generated tokens per second over the same span.",
    "TTFT p50 (s)": "Time to first token, median over finished requests (queueing included).",
    "TTFT p99 (s)": "Time to first token, 99th percentile over finished requests.",
    "TPOT p50 (s)": "Time per output token after the first, median over finished requests with 2+ tokens.",
    "Normalized latency mean (s/token)": "End-to-end latency divided by output tokens, mean over finished "
    "requests (the vLLM paper's metric).",
    "Token states (% of KV, whole run)": "Share of KV capacity holding tokens already computed, time-weighted "
    "mean over the whole run.",
    "Mean batch size (requests)": "Requests in a step, time-weighted mean over the time a replica was busy.",
    "KV evicted (mean % of context)": "PagedEviction: share of each request's context dropped, mean over "
    "finished requests.",
    "Prefix-cache hits (% of tokens)": "Prompt tokens found in the prefix cache, of all tokens looked up "
    "(vLLM v1's prefix_cache_hit_rate).",
    "Prefix-cache hits (% of blocks)": "Full blocks found in the prefix cache, of all blocks looked up (vLLM "
    "v0's block hit rate).",
    "Cached blocks evicted": "Unreferenced cached blocks taken back for new allocations (LRU).",
    "Allocator counters": "The allocator's own counters (summary.json allocator_stats); rest the pointer on a "
    "name for its meaning.",
}

# term -> meaning, for the legend under the tables
REJECTED = (
    "requests refused when they arrive because they could never be served: prompt + output over the context "
    "limit (max_model_len), or more KV than a replica holds. They are counted, never queued (they block no "
    "one), and have no latency, so the CDFs leave them out; their reasons are listed above."
)
SATURATED = (
    "the part of a run while at least one request waits for KV memory. The breakdown's right panel is the "
    "time-weighted mean over that window only (where allocators differ most); 'never saturated': no request "
    "ever waited for memory."
)

# allocator_stats key -> meaning (summary.json's allocator_stats)
COUNTER_TO_MEANING = {
    "num_pages_mapped": "vAttention: physical pages mapped over the run (each layer's K and V are separate "
    "buffers, so one token's growth maps 2 × num_layers pages).",
    "map_s": "vAttention: total time spent mapping pages, num_pages_mapped × map_latency_s, whether or not a "
    "step waited for it.",
    "map_charged_s": "vAttention: the part of map_s that lengthened steps: all of it with synchronous "
    "mapping; with overlapped mapping (the default) only what did not hide behind the step before.",
    "num_growth_copies": "contiguous-growth: copies of a request's region into a larger one when it outgrew it.",
    "num_fork_copies": "contiguous-growth: copies made when a parallel sample or beam forked.",
    "copy_bytes": "contiguous-growth: bytes copied by those copies.",
    "copy_s": "contiguous-growth: time those copies added to steps (copy_bytes / copy bandwidth).",
    "num_evicted_blocks": "PagedEviction: whole blocks dropped from block tables to keep each request within "
    "its budget.",
}
