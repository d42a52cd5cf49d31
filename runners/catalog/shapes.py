"""Real model dimensions the catalog's shape cases are cut from.

Llama-3-8B: hidden 4096, 32 query heads and 8 KV heads of 128 dims (grouped-query attention),
MLP intermediate 14336; sequences 1 (decode), 128 (short prefill) and 2048 (long prefill).
Where a full-size case would make the float64 CPU reference too slow for the one-minute
budget (a 2048x4096x4096 GEMM), a case keeps the dimension that matters for numerics (the
reduction length or the sequence) and trims another, and its name says so.
"""

HIDDEN = 4096
HEADS = 32
KV_HEADS = 8
HEAD_DIM = 128
KV_DIM = KV_HEADS * HEAD_DIM  # 1024
INTERMEDIATE = 14336
SEQ_DECODE = 1
SEQ_SHORT = 128
SEQ_LONG = 2048
LONG_REDUCTION = 16384  # the K that exposes float16/bfloat16 accumulators
ROPE_THETA = 500000.0  # Llama 3
