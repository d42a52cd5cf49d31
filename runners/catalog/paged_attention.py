"""Paged KV cache (vLLM's PagedAttention layout): writing new tokens into pages, and decode attention
over pages found through block tables.

The cache is `num_blocks` pages of `block_size` slots (vLLM's default 16; FlashInfer and TensorRT-LLM
use 16 to 64), each slot holding KV heads x head_dim; a sequence's pages are listed, in order, in its
row of the block table and are not contiguous in memory (the catalog shuffles them). Slots no
sequence owns hold NaN, as stale memory may: a kernel that reads a page or a slot it does not own is
caught. Shapes: Llama-3-8B (8 KV heads x 128, 32 query heads), Qwen2-7B (4 KV heads, 28 query
heads), with sequence lengths trimmed to keep the float64 reference within the suite's budget.
"""

from __future__ import annotations

import torch

from runners.catalog.attention import attention_reference, attention_tolerance
from runners.catalog.base import (
    FLOAT_DTYPES,
    Case,
    Derived,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    element_size,
    exact_tolerance,
    randn,
)


def _paged_layout(
    lengths: list[int], block_size: int, spare: int, g: torch.Generator, layout: str = "shuffled"
) -> tuple[torch.Tensor, int]:
    """Block tables (B, max_blocks) int32 pointing at shuffled pages, and the number of pages; each
    sequence owns ceil(length / block_size) pages, `spare` pages belong to nobody, unused table
    entries are -1. Layout "descending_interleaved": the sequences' pages alternate in memory (page
    i of sequence b next to page i of sequence b + 1) and each table lists its pages from the
    highest address down, so no kernel may assume a table ascends or its pages are adjacent."""
    needed = [-(-length // block_size) for length in lengths]
    num_blocks = sum(needed) + spare
    width = max(needed, default=0) or 1
    tables = torch.full((len(lengths), width), -1, dtype=torch.int32)
    if layout == "descending_interleaved":
        owned: list[list[int]] = [[] for _ in lengths]
        page = spare  # the spare pages sit at the bottom
        for index in range(width):
            for row, count in enumerate(needed):
                if index < count:
                    owned[row].append(page)
                    page += 1
        for row, pages_of_row in enumerate(owned):
            tables[row, : len(pages_of_row)] = torch.tensor(pages_of_row[::-1], dtype=torch.int32)
        return tables, num_blocks
    pages = torch.randperm(num_blocks, generator=g)
    start = 0
    for row, count in enumerate(needed):
        tables[row, :count] = pages[start : start + count].to(torch.int32)
        start += count
    return tables, num_blocks


def _slot_positions(block_tables: torch.Tensor, lengths: torch.Tensor, block_size: int) -> list[torch.Tensor]:
    """For each sequence, the flat cache slot (page * block_size + offset) of each of its positions."""
    slots = []
    for row, length in enumerate(lengths.tolist()):
        positions = torch.arange(int(length), device=block_tables.device)
        pages = block_tables[row].long()[positions // block_size]
        slots.append(pages * block_size + positions % block_size)
    return slots


def _gather(cache: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """(positions, Hkv, D) of one sequence from a (num_blocks, block_size, Hkv, D) cache."""
    return cache.reshape(-1, *cache.shape[2:])[slots]


def _write(cache: torch.Tensor, slots: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    flat = cache.reshape(-1, *cache.shape[2:]).clone()
    flat[slots] = new
    return flat.reshape(cache.shape)


def _new_token_slots(inputs: Inputs) -> torch.Tensor:
    """The slot of each sequence's newest position (length - 1): where its new K and V are written."""
    block_size = inputs["k_cache"].shape[1]
    positions = inputs["seq_lens"].long() - 1
    pages = inputs["block_tables"].long().gather(1, (positions // block_size)[:, None])[:, 0]
    return pages * block_size + positions % block_size


def _stale_cache(
    num_blocks: int, block_size: int, heads: int, dim: int, dtype: str, g: torch.Generator
) -> torch.Tensor:
    return randn((num_blocks, block_size, heads, dim), dtype, g)


def _draw_lengths(case: Case, g: torch.Generator) -> list[int]:
    low, high = case["min_len"], case["max_len"]
    lengths = torch.randint(low, high + 1, (case["B"],), generator=g).tolist()
    if case["B"] and case.options.get("one_block_sequence"):
        lengths[0] = 1  # a sequence whose only token is the new one
    if case.options.get("partial_last_page"):
        # No sequence fills its last page, nor has its newest token at a page's first slot: a length
        # that ends a page or opens one is moved down to block - 1 tokens into its last page.
        block = case["block"]
        lengths = [
            length - 1
            if length % block == 0
            else length - 2
            if length % block == 1 and length > block
            else length
            for length in lengths
        ]
    return lengths


class PagedKvWriteKernel(Kernel):
    """vLLM's reshape_and_cache: each sequence's new K and V go to slot (length - 1) of its pages."""

    name = "paged_kv_write"
    description = "write new tokens' K and V into a paged KV cache through block tables; (2, pages...) out"
    dtypes = FLOAT_DTYPES
    cases = (
        Case(
            "llama_batch_block16",
            {
                "B": Span(4, 12),
                "Hkv": 8,
                "D": 128,
                "block": 16,
                "min_len": 1,
                "max_len": Span(48, 128),
                "spare": 4,
            },
        ),
        Case(
            "qwen_batch_block32",
            {
                "B": Span(3, 9),
                "Hkv": 4,
                "D": 128,
                "block": 32,
                "min_len": 1,
                "max_len": Span(64, 160),
                "spare": 2,
            },
        ),
        # A sequence whose new token opens a fresh page (length 1) beside long ones.
        Case(
            "new_page_opened",
            {
                "B": Span(2, 5),
                "Hkv": 2,
                "D": 64,
                "block": 16,
                "min_len": 1,
                "max_len": Span(33, 97, 16),
                "spare": 3,
            },
            options={"one_block_sequence": True},
        ),
        Case(
            "odd_block_and_heads",
            {
                "B": Span(3, 7, odd=True),
                "Hkv": 3,
                "D": Span(40, 72, 8),
                "block": Span(5, 11, odd=True),
                "min_len": 1,
                "max_len": Span(29, 61, odd=True),
                "spare": 1,
            },
            edge="odd_size",
        ),
        # The new token lands mid-page in a partly filled last page (never at a page's start or end).
        Case(
            "into_partial_last_page",
            {
                "B": Span(3, 8),
                "Hkv": 8,
                "D": 128,
                "block": 16,
                "min_len": 18,
                "max_len": Span(64, 128),
                "spare": 2,
            },
            options={"partial_last_page": True, "layout": "descending_interleaved"},
        ),
        # Pages of one token (SGLang's default page size 1): the block table is a token table.
        Case(
            "token_granular_pages",
            {
                "B": Span(2, 6),
                "Hkv": 4,
                "D": 128,
                "block": 1,
                "min_len": 1,
                "max_len": Span(24, 64),
                "spare": 5,
            },
        ),
        Case(
            "no_sequences",
            {"B": 0, "Hkv": 2, "D": 64, "block": 16, "min_len": 1, "max_len": 16, "spare": 2},
            edge="empty",
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        lengths = _draw_lengths(case, g)
        tables, num_blocks = _paged_layout(
            lengths, case["block"], case["spare"], g, case.options.get("layout", "shuffled")
        )
        heads, dim = case["Hkv"], case["D"]
        return {
            "key": randn((case["B"], heads, dim), dtype, g),
            "value": randn((case["B"], heads, dim), dtype, g),
            "k_cache": _stale_cache(num_blocks, case["block"], heads, dim, dtype, g),
            "v_cache": _stale_cache(num_blocks, case["block"], heads, dim, dtype, g),
            "block_tables": tables,
            "seq_lens": torch.tensor(lengths, dtype=torch.int32),
        }

    def run(self, inputs: Inputs) -> torch.Tensor:
        slots = _new_token_slots(inputs)
        k_cache = _write(inputs["k_cache"], slots, inputs["key"])
        v_cache = _write(inputs["v_cache"], slots, inputs["value"])
        return torch.stack((k_cache, v_cache))

    def reference(self, inputs: Inputs) -> torch.Tensor:
        # Written slot by slot, from the definition (page = table[position // block], offset = position % block).
        k_cache, v_cache = inputs["k_cache"].clone(), inputs["v_cache"].clone()
        block_size = k_cache.shape[1]
        for row, length in enumerate(inputs["seq_lens"].tolist()):
            position = int(length) - 1
            page = int(inputs["block_tables"][row, position // block_size])
            k_cache[page, position % block_size] = inputs["key"][row]
            v_cache[page, position % block_size] = inputs["value"][row]
        return torch.stack((k_cache, v_cache))

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return exact_tolerance("a cache write copies values: bit-exact")

    def flops(self, case: Case) -> int:
        return 0

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return element_size(dtype) * 4 * case["B"] * case["Hkv"] * case["D"] + 8 * case["B"]


class PagedDecodeAttentionKernel(Kernel):
    """One decode step of a batch over a paged cache: write each sequence's new K/V into its page, then
    its new query attends over its `seq_len` positions (the new one included), gathered through its
    block table. Output (B, Hq, D); the cache passed in is not modified (the written cache is the
    kernel's own copy)."""

    name = "paged_decode_attention"
    description = (
        "decode attention over a paged KV cache: block tables, non-contiguous pages, varying sequence "
        "lengths in one batch, the new token written into its page first"
    )
    dtypes = FLOAT_DTYPES
    cases = (
        Case(
            "llama_gqa_block16_varying_lengths",
            {
                "B": Span(3, 6),
                "Hkv": 8,
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "D": 128,
                "block": 16,
                "min_len": 1,
                "max_len": Span(96, 224),
                "spare": 4,
            },
        ),
        Case(
            "qwen_gqa_block32",
            {
                "B": Span(2, 5),
                "Hkv": 4,
                "group": 7,
                "Hq": Derived("Hkv * group"),
                "D": 128,
                "block": 32,
                "min_len": Span(16, 64),
                "max_len": Span(160, 288),
                "spare": 2,
            },
        ),
        # Long context, one sequence: the reduction over 2048 positions in 128 pages.
        Case(
            "long_context_one_sequence",
            {
                "B": 1,
                "Hkv": 2,
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "D": 128,
                "block": 16,
                "min_len": Span(1664, 2176),
                "max_len": Derived("min_len"),
                "spare": 8,
            },
        ),
        # A sequence of one token (its new one, in a fresh page) beside long ones.
        Case(
            "single_token_sequence",
            {
                "B": Span(2, 4),
                "Hkv": 2,
                "group": 2,
                "Hq": Derived("Hkv * group"),
                "D": 64,
                "block": 16,
                "min_len": 1,
                "max_len": Span(48, 96),
                "spare": 2,
            },
            options={"one_block_sequence": True},
        ),
        # Every slot no sequence owns (spare pages, page tails, the new token's slot) holds NaN.
        Case(
            "nan_in_unowned_slots",
            {
                "B": Span(2, 4),
                "Hkv": 2,
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "D": 64,
                "block": 16,
                "min_len": 8,
                "max_len": Span(40, 120),
                "spare": 3,
            },
            edge="nan_inf",
        ),
        Case(
            "odd_block_and_dims",
            {
                "B": Span(3, 5, odd=True),
                "Hkv": 3,
                "group": 3,
                "Hq": Derived("Hkv * group"),
                "D": Span(40, 72, 8),
                "block": Span(5, 11, odd=True),
                "min_len": 1,
                "max_len": Span(29, 91, odd=True),
                "spare": 1,
            },
            edge="odd_size",
        ),
        # Pages interleaved between the sequences and listed from the highest address down.
        Case(
            "descending_interleaved_pages",
            {
                "B": Span(3, 5),
                "Hkv": 2,
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "D": 128,
                "block": 16,
                "min_len": 17,
                "max_len": Span(64, 160),
                "spare": 2,
            },
            options={"layout": "descending_interleaved"},
        ),
        # Every sequence's last page partly filled, its tail slots (and every unowned slot) NaN: a
        # kernel that reads a whole last page reads NaN.
        Case(
            "nan_in_partial_last_pages",
            {
                "B": Span(2, 5),
                "Hkv": 2,
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "D": 64,
                "block": 32,
                "min_len": 2,
                "max_len": Span(72, 150),
                "spare": 1,
            },
            edge="nan_inf",
            options={"partial_last_page": True},
        ),
        # Pages of one token (SGLang's default page size 1).
        Case(
            "token_granular_pages",
            {
                "B": Span(2, 4),
                "Hkv": 2,
                "group": 4,
                "Hq": Derived("Hkv * group"),
                "D": 128,
                "block": 1,
                "min_len": 1,
                "max_len": Span(48, 96),
                "spare": 3,
            },
        ),
        Case(
            "no_sequences",
            {
                "B": 0,
                "Hkv": 2,
                "group": 2,
                "Hq": Derived("Hkv * group"),
                "D": 64,
                "block": 16,
                "min_len": 1,
                "max_len": 16,
                "spare": 2,
            },
            edge="empty",
        ),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        lengths = _draw_lengths(case, g)
        tables, num_blocks = _paged_layout(
            lengths, case["block"], case["spare"], g, case.options.get("layout", "shuffled")
        )
        heads, dim = case["Hkv"], case["D"]
        k_cache = _stale_cache(num_blocks, case["block"], heads, dim, dtype, g)
        v_cache = _stale_cache(num_blocks, case["block"], heads, dim, dtype, g)
        seq_lens = torch.tensor(lengths, dtype=torch.int32)
        # The new token's slot holds stale NaN until the kernel writes it: a kernel that attends before
        # writing (or writes elsewhere) reads NaN.
        owned = torch.zeros(num_blocks * case["block"], dtype=torch.bool)
        for slots in _slot_positions(tables, seq_lens - 1, case["block"]):
            owned[slots] = True
        stale = ~owned if case.edge == "nan_inf" else torch.zeros_like(owned)
        if case["B"]:
            stale[_new_token_slots({"k_cache": k_cache, "seq_lens": seq_lens, "block_tables": tables})] = True
        for cache in (k_cache, v_cache):
            cache.view(-1, heads, dim)[stale] = float("nan")
        return {
            "q": randn((case["B"], case["Hq"], dim), dtype, g),
            "key": randn((case["B"], heads, dim), dtype, g),
            "value": randn((case["B"], heads, dim), dtype, g),
            "k_cache": k_cache,
            "v_cache": v_cache,
            "block_tables": tables,
            "seq_lens": seq_lens,
        }

    def run(self, inputs: Inputs) -> torch.Tensor:
        slots = _new_token_slots(inputs)
        k_cache = _write(inputs["k_cache"], slots, inputs["key"])
        v_cache = _write(inputs["v_cache"], slots, inputs["value"])
        block_size = k_cache.shape[1]
        outputs = []
        for row, positions in enumerate(
            _slot_positions(inputs["block_tables"], inputs["seq_lens"], block_size)
        ):
            k = _gather(k_cache, positions).transpose(0, 1)[None]  # (1, Hkv, L, D)
            v = _gather(v_cache, positions).transpose(0, 1)[None]
            q = inputs["q"][row][None, :, None]  # (1, Hq, 1, D)
            outputs.append(
                torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, enable_gqa=q.shape[1] != k.shape[1]
                )[0, :, 0]
            )
        if not outputs:
            return inputs["q"].new_zeros(inputs["q"].shape)
        return torch.stack(outputs)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        q = inputs["q"]
        block_size = inputs["k_cache"].shape[1]
        outputs = []
        for row, length in enumerate(inputs["seq_lens"].tolist()):
            # Positions already in the cache, from the definition: page = table[position // block],
            # offset = position % block, indexing the (pages, block, heads, dim) cache by both.
            positions = torch.arange(int(length) - 1)
            pages = inputs["block_tables"][row].long()[positions // block_size]
            offsets = positions % block_size
            k = torch.cat((inputs["k_cache"][pages, offsets], inputs["key"][row][None]))
            v = torch.cat((inputs["v_cache"][pages, offsets], inputs["value"][row][None]))
            k, v = k.transpose(0, 1)[None], v.transpose(0, 1)[None]
            outputs.append(attention_reference(q[row][None, :, None], k, v, None, causal=False)[0, :, 0])
        return torch.stack(outputs) if outputs else q.new_zeros(q.shape)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return attention_tolerance(dtype, case["D"], case["max_len"], qk_term=16.0, v_max=6.0)

    def flops(self, case: Case) -> int:
        mean_len = (case["min_len"] + case["max_len"]) // 2
        return 4 * case["B"] * case["Hq"] * mean_len * case["D"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        mean_len = (case["min_len"] + case["max_len"]) // 2
        b, d = case["B"], case["D"]
        return element_size(dtype) * (2 * b * case["Hq"] * d + 2 * b * case["Hkv"] * mean_len * d)


KERNELS: tuple[Kernel, ...] = (PagedKvWriteKernel(), PagedDecodeAttentionKernel())
