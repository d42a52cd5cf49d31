"""Reductions and scans: sum, mean, amax, cumsum, argmax, top-k."""

from __future__ import annotations

from collections.abc import Callable

import torch

from runners.catalog.base import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    Case,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    accumulation_bound,
    accumulation_tolerance,
    element_size,
    exact_tolerance,
    inject_nan_inf,
    randint8,
    torch_dtype,
    uniform,
    values_for,
)
from runners.catalog.shapes import LONG_K, LONG_SEQ, MODEL_HIDDEN, SHORT_SEQ


def _row_cases(*, empty: bool = True, overflow: bool = False) -> tuple[Case, ...]:
    cases = [
        Case("llama_hidden_short_prefill", {"M": SHORT_SEQ, "N": MODEL_HIDDEN}),
        Case("long_prefill_rows", {"M": Span(2, 6), "N": LONG_SEQ}),
        Case("odd_sizes", {"M": Span(5, 13, odd=True), "N": Span(769, 1279, odd=True)}, edge="odd_size"),
        Case("long_row", {"M": Span(2, 6), "N": LONG_K}, edge="long_reduction"),
        Case("nan_inf", {"M": Span(4, 12), "N": Span(96, 160)}, edge="nan_inf", dtypes=FLOAT_DTYPES),
        Case("transposed", {"M": Span(24, 40), "N": Span(192, 320)}, edge="non_contiguous"),
    ]
    if empty:
        cases.append(Case("empty_rows", {"M": Span(2, 6), "N": 0}, edge="empty"))
    if overflow:
        # 16 or more values near 3e4 sum past float16's 65504: the correct float16 answer is +-inf.
        cases.append(
            Case(
                "sum_past_fp16_max",
                {"M": Span(2, 6), "N": Span(16, 32)},
                edge="fp16_overflow",
                dtypes=FLOAT_DTYPES,
                options={"offset": 30000.0},
            )
        )
    return tuple(cases)


def _row_values(case: Case, dtype: str, g: torch.Generator) -> torch.Tensor:
    shape = (case["N"], case["M"]) if case.edge == "non_contiguous" else (case["M"], case["N"])
    if case.edge == "long_reduction":
        if dtype == "int8":
            return randint8(shape, g, 0, 128)
        return uniform(shape, dtype, g, 0.0, 1.0)
    if "offset" in case.options:
        return uniform(shape, dtype, g, 0.9, 1.0) * case.options["offset"]
    x = values_for(shape, dtype, g)
    return inject_nan_inf(x, g) if case.edge == "nan_inf" else x


class RowReductionKernel(Kernel):
    """out[i] = reduce(x[i, :]) over the last dimension (or a running scan for cumsum)."""

    def __init__(
        self,
        name: str,
        description: str,
        fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        dtypes: tuple[str, ...],
        accumulates: bool,
        integer_output: torch.dtype | None,
        cases: tuple[Case, ...],
        scan: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self._fn = fn
        self.dtypes = dtypes
        self._accumulates = accumulates
        self._integer_output = integer_output
        self.cases = cases
        self._scan = scan

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        return {"x": _row_values(case, dtype, g)}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        return {"x": inputs["x"].t()} if case.edge == "non_contiguous" else inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return self._fn(inputs["x"])

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return self._fn(inputs["x"])

    def output_dtype(self, dtype: str) -> torch.dtype:
        # torch.sum / cumsum promote integer inputs to int64 so they cannot overflow.
        if dtype == "int8" and self._integer_output is not None:
            return self._integer_output
        return torch_dtype(dtype)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        if self._integer_output is not None and dtype == "int8":
            return exact_tolerance("integer arithmetic is exact (int8 sums are taken in int64)")
        if self._accumulates:
            what = {"mean": "sum|x| / N", "cumsum": "cumsum(|x|)"}.get(self.name, "sum|x|")
            return accumulation_tolerance(dtype, case["N"], what)
        return exact_tolerance("a maximum selects one of its inputs, which must come back bit-exact")

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor | None:
        if not self._accumulates or dtype == "int8":
            return None
        magnitude = inputs["x"].abs()
        if self._scan:
            return accumulation_bound(magnitude.cumsum(dim=-1), case["N"], dtype)
        total = magnitude.sum(dim=-1)
        # A mean is the sum's bound over N (the division's own rounding is in rtol).
        return accumulation_bound(
            total / max(case["N"], 1) if self.name == "mean" else total, case["N"], dtype
        )

    def flops(self, case: Case) -> int:
        return case["M"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        out = case["M"] * (case["N"] if self._scan else 1)
        return element_size(dtype) * (case["M"] * case["N"] + out)


class ArgmaxKernel(Kernel):
    name = "argmax"
    description = "index of the row maximum (greedy decoding over the vocabulary)"
    dtypes = ALL_DTYPES
    cases = (
        # Vocabulary sizes of real tokenizers lie between 32000 (Llama 2) and 128256 (Llama 3).
        Case("vocab_rows", {"M": Span(2, 6), "N": Span(30000, 50000)}),
        Case("llama_hidden_short_prefill", {"M": SHORT_SEQ, "N": MODEL_HIDDEN}),
        Case("odd_sizes", {"M": Span(5, 13, odd=True), "N": Span(769, 1279, odd=True)}, edge="odd_size"),
        Case("nan_wins", {"M": Span(6, 12, 2), "N": Span(96, 160)}, edge="nan_inf", dtypes=FLOAT_DTYPES),
        Case("transposed", {"M": Span(24, 40), "N": Span(192, 320)}, edge="non_contiguous"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        shape = (case["N"], case["M"]) if case.edge == "non_contiguous" else (case["M"], case["N"])
        x = values_for(shape, dtype, g)
        # One planted, strictly largest value per row: ties would make the index ambiguous.
        x = x.clamp(max=100) if dtype == "int8" else x.clamp(max=6.0)
        winners = torch.randint(0, case["N"], (case["M"],), generator=g)
        rows = torch.arange(case["M"])
        if case.edge == "non_contiguous":
            x[winners, rows] = 127 if dtype == "int8" else 8.0
        else:
            x[rows, winners] = 127 if dtype == "int8" else 8.0
            if case.edge == "nan_inf":
                # torch.argmax treats NaN as the maximum; IEEE-consistent devices agree.
                x[::2, 0] = float("nan")
        return {"x": x}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        return {"x": inputs["x"].t()} if case.edge == "non_contiguous" else inputs

    def run(self, inputs: Inputs) -> torch.Tensor:
        return torch.argmax(inputs["x"], dim=-1)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return torch.argmax(inputs["x"], dim=-1)

    def output_dtype(self, dtype: str) -> torch.dtype:
        return torch.int64

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return Tolerance(0.0, 0.0, "indices must be exact (the maximum is unique by construction)")

    def flops(self, case: Case) -> int:
        return case["M"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return element_size(dtype) * case["M"] * case["N"] + 8 * case["M"]


class TopkKernel(Kernel):
    name = "topk"
    description = "k largest values per row with their indices (sampling, MoE routing)"
    dtypes = ALL_DTYPES
    cases = (
        Case("vocab_rows_topk", {"M": Span(2, 6), "N": Span(30000, 50000), "k": Span(20, 80)}),
        # Mixture-of-experts routing: 8 to 64 experts, 1 to 8 chosen per token.
        Case("moe_router", {"M": SHORT_SEQ, "N": Span(8, 64, 8), "k": Span(1, 8)}),
        Case(
            "odd_sizes",
            {"M": Span(3, 7, odd=True), "N": Span(769, 1279, odd=True), "k": Span(3, 13, odd=True)},
            edge="odd_size",
        ),
        Case(
            "nan_inf",
            {"M": Span(4, 12), "N": Span(96, 160), "k": Span(2, 8)},
            edge="nan_inf",
            dtypes=FLOAT_DTYPES,
        ),
        Case("k_zero", {"M": Span(2, 6), "N": Span(8, 24), "k": 0}, edge="empty"),
    )

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        x = values_for((case["M"], case["N"]), dtype, g)
        if case.edge == "nan_inf":
            x = inject_nan_inf(x, g)
        return {"x": x, "k": case["k"]}

    def run(self, inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
        values, indices = torch.topk(inputs["x"], inputs["k"], dim=-1)
        return values, indices

    def comparable(self, output: tuple[torch.Tensor, torch.Tensor], inputs: Inputs) -> torch.Tensor:
        # Indices are not unique under ties, so they are checked by what they point at: the
        # values gathered at the returned indices must equal the returned values.
        values, indices = output
        return torch.cat((values, inputs["x"].gather(-1, indices)), dim=-1)

    def reference(self, inputs: Inputs) -> torch.Tensor:
        values = torch.topk(inputs["x"], inputs["k"], dim=-1).values
        return torch.cat((values, values), dim=-1)

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        return Tolerance(0.0, 0.0, "top-k selects input values, which must come back bit-exact")

    def flops(self, case: Case) -> int:
        return case["M"] * case["N"]

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        return (
            element_size(dtype) * (case["M"] * case["N"] + case["M"] * case["k"]) + 8 * case["M"] * case["k"]
        )


KERNELS: tuple[Kernel, ...] = (
    RowReductionKernel(
        "sum",
        "sum over the last dim",
        lambda x: torch.sum(x, dim=-1),
        dtypes=ALL_DTYPES,
        accumulates=True,
        integer_output=torch.int64,
        cases=_row_cases(overflow=True),
    ),
    RowReductionKernel(
        "mean",
        "mean over the last dim",
        lambda x: torch.mean(x, dim=-1),
        dtypes=FLOAT_DTYPES,
        accumulates=True,
        integer_output=None,
        cases=_row_cases(),
    ),
    RowReductionKernel(
        "amax",
        "maximum over the last dim (NaN propagates)",
        lambda x: torch.amax(x, dim=-1),
        dtypes=ALL_DTYPES,
        accumulates=False,
        integer_output=None,
        cases=_row_cases(empty=False),
    ),
    RowReductionKernel(
        "cumsum",
        "inclusive prefix sum over the last dim",
        lambda x: torch.cumsum(x, dim=-1),
        dtypes=ALL_DTYPES,
        accumulates=True,
        integer_output=torch.int64,
        cases=_row_cases(),
        scan=True,
    ),
    ArgmaxKernel(),
    TopkKernel(),
)
