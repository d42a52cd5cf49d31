"""Real model dimensions the catalog's shape cases are cut from, and the ranges jobs draw them in.

Llama-3-8B: hidden 4096, 32 query heads and 8 KV heads of 128 dims (grouped-query attention),
MLP intermediate 14336; sequences 1 (decode), 128 (short prefill) and 2048 (long prefill).
Where a full-size case would make the float64 CPU reference too slow for the one-minute
budget (a 2048x4096x4096 GEMM), a case keeps the dimension that matters for numerics (the
reduction length or the sequence) and trims another, and its name says so.

A job never runs these exact numbers: each case draws its dimensions from the job's challenge
within the ranges below (runners/catalog/base.py, Case.draw), so that no shape is known before
the job. The ranges stay where real models are: hidden sizes of 3072 to 5120 in steps of 128
(Llama-3.2-3B 3072, Llama-3-8B and Mistral-7B 4096, Llama-2-13B 5120), head dims 64, 96 or 128,
KV projections of 4 to 12 heads of 128, prompt lengths around 128 and 2048 tokens.
"""

from runners.catalog.base import Span

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

# What a job draws (see the module docstring).
MODEL_HIDDEN = Span(3072, 5120, 128)
MODEL_KV_DIM = Span(512, 1536, 128)
MODEL_INTERMEDIATE = Span(11264, 14336, 512)
HEAD_DIMS = Span(64, 128, 32)
QUERY_HEADS = Span(16, 40, 8)
SHORT_SEQ = Span(96, 160)
LONG_SEQ = Span(1664, 2176)
LONG_K = Span(LONG_REDUCTION, LONG_REDUCTION + 4096, 64)
ODD_100 = Span(97, 161, odd=True)
ODD_SMALL = Span(25, 79, odd=True)
