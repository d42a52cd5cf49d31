"""The micro-benchmarks: which kernels, shapes and dtypes the performance suite times.

GEMM, int8 GEMM and conv come from the kernel catalog (same seeded inputs, same device call
and the catalog's FLOP and byte counts), on performance-sized shapes. Memory bandwidth
(STREAM copy and triad) and attention are defined here; attention uses the catalog's kernels
when it has them under the names below.

Every benchmark also says how to judge its output (``reference``): the inputs are drawn
again on the host from the challenge, never read back from the device, and the float64
reference is computed for a seeded part of the output (some GEMM rows, one conv image, two
attention heads, the head of a STREAM vector) with the conformance tolerance of the dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from runners.catalog.attention import attention_reference, attention_tolerance
from runners.catalog.base import (
    Case,
    Kernel,
    Tolerance,
    case_generator,
    element_size,
    elementwise_tolerance,
    torch_dtype,
)

Fn = Callable[[], Any]


class BenchCall:
    """A benchmark's no-argument device call, with the input buffers it reads.

    The caching probe (runners/integrity.py, TEST04) refills ``inputs`` in place with fresh
    values before a fresh call, so both sides of the probe run on the same, equally hot buffers.
    """

    def __init__(self, run: Fn, *inputs: Any) -> None:
        self._run = run
        self.inputs: tuple[torch.Tensor, ...] = tuple(t for t in inputs if isinstance(t, torch.Tensor))

    def __call__(self) -> Any:
        return self._run()


# How many output rows of a GEMM the float64 reference is computed for (each costs K*N).
REFERENCE_ROWS = 8
REFERENCE_HEADS = 2
REFERENCE_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class ReferenceCheck:
    """The part of a benchmark's output a reference exists for, and that reference.

    ``select`` takes that part out of the device output (on the device); ``expected`` is the
    float64 reference already rounded to the output dtype, on the host; ``tolerance`` is the
    conformance suite's for the kernel, case and dtype.
    """

    select: Callable[[Any], torch.Tensor]
    expected: torch.Tensor
    tolerance: Tolerance
    # The kernel's componentwise allowance for this part (Kernel.error_bound), None where it has none.
    bound: torch.Tensor | None = None


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def _widen(value: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    if value.is_floating_point():
        return value.to(torch.float64)
    return value.to(torch.int64)


@dataclass(frozen=True)
class Benchmark:
    """One timed workload: ``build(device, variant)`` returns a no-argument device call (with its inputs).

    ``variant`` 0 is the benchmark's own input; 1, 2, ... are fresh inputs of the same shape
    drawn from other seeds (for the caching check).
    """

    name: str
    kind: str  # gemm | bandwidth | attention | conv
    dtype: str
    flops: int
    bytes: int
    build: Callable[[torch.device, int], BenchCall]
    params: dict[str, Any] = field(default_factory=dict)
    # Builds the float64 check of a variant's output (``reference(variant=0)``: the benchmark's own
    # input; the caching probe's fresh inputs are variants 1, 2, ...); None where no reference exists.
    reference: Callable[..., ReferenceCheck] | None = None

    @property
    def group(self) -> tuple[str, str]:
        return self.kind, self.dtype


def _catalog_kernel(name: str) -> Kernel | None:
    """A catalog kernel by name, or None where the catalog does not (yet) define it."""
    from runners.catalog import convolution, linear_algebra

    modules: list[Any] = [linear_algebra, convolution]
    try:
        from runners.catalog import attention

        modules.append(attention)
    except ImportError:
        pass
    for module in modules:
        for kernel in getattr(module, "KERNELS", ()):
            if kernel.name == name:
                return kernel
    return None


def catalog_benchmark(kernel: Kernel, case: Case, dtype: str, kind: str, challenge: str) -> Benchmark:
    def build(device: torch.device, variant: int) -> BenchCall:
        g = case_generator(f"{challenge}#{variant}", kernel.name, case.name, dtype)
        inputs = kernel.make_inputs(case, dtype, g, device)
        run = kernel.run
        return BenchCall(lambda: run(inputs), *inputs.values())

    def reference(variant: int = 0) -> ReferenceCheck:
        g = case_generator(f"{challenge}#{variant}", kernel.name, case.name, dtype)
        raw = kernel.generate(case, dtype, g)
        part: Any = slice(None)
        if "a" in raw and raw["a"].dim() == 2:  # GEMM: a seeded set of output rows
            rows = raw["a"].shape[0]
            chooser = case_generator(challenge, kernel.name, case.name, "reference-rows")
            part = torch.randperm(rows, generator=chooser)[: min(REFERENCE_ROWS, rows)].sort().values
            raw = {**raw, "a": raw["a"][part]}
        elif "x" in raw and raw["x"].dim() == 4:  # conv: the first image of the batch
            part = slice(0, 1)
            raw = {**raw, "x": raw["x"][:1]}
        arranged = kernel.arrange(raw, case)
        wide = {k: _widen(v) for k, v in arranged.items()}
        expected = kernel.reference(wide)
        bound = kernel.error_bound(wide, case, dtype)
        index = part.to("cpu") if isinstance(part, torch.Tensor) else part

        def select(output: Any) -> torch.Tensor:
            out = kernel.comparable(_first(output), {})
            return out[index.to(out.device)] if isinstance(index, torch.Tensor) else out[index]

        return ReferenceCheck(
            select, expected.to(kernel.output_dtype(dtype)), kernel.tolerance(case, dtype), bound
        )

    return Benchmark(
        name=f"{kernel.name} {case.name}",
        kind=kind,
        dtype=dtype,
        flops=kernel.flops(case),
        bytes=kernel.bytes(case, dtype),
        build=build,
        params={"kernel": kernel.name, "case": case.name, **case.dims},
        reference=reference,
    )


# The catalog GEMM that measures each dtype's peak: torch._int_mm for int8 (int32 out),
# torch._scaled_mm for float8 e4m3 (per-tensor scales, float32 out), plain matmul otherwise.
GEMM_KERNELS = {"int8": "int8_matmul", "float8_e4m3fn": "scaled_matmul_fp8"}


def gemm_kernel_name(dtype: str) -> str:
    return GEMM_KERNELS.get(dtype, "matmul")


def gemm_benchmarks(sizes: list[int], dtypes: list[str], challenge: str) -> list[Benchmark]:
    out = []
    for dtype in dtypes:
        kernel = _catalog_kernel(gemm_kernel_name(dtype))
        if kernel is None:
            continue
        for n in sizes:
            case = Case(f"perf_{n}", {"M": n, "K": n, "N": n})
            out.append(catalog_benchmark(kernel, case, dtype, "gemm", challenge))
    return out


def conv_benchmarks(batch: int, dtypes: list[str], challenge: str) -> list[Benchmark]:
    kernel = _catalog_kernel("conv2d_channels_last") or _catalog_kernel("conv2d_nchw")
    if kernel is None:
        return []
    case = Case(
        "perf_resnet_3x3_c64_56",
        {"N": batch, "C": 64, "H": 56, "W": 56, "O": 64, "R": 3, "stride": 1, "pad": 1},
    )
    return [catalog_benchmark(kernel, case, d, "conv", challenge) for d in dtypes if d in kernel.dtypes]


def bandwidth_benchmarks(buffer_bytes: int, challenge: str) -> list[Benchmark]:
    """STREAM copy (a = b) and triad (a = b + s*c) in float32 over buffers beyond the LLC."""
    n = buffer_bytes // 4

    def operands(device: torch.device, variant: int, count: int) -> list[torch.Tensor]:
        g = case_generator(f"{challenge}#{variant}", "stream", "bandwidth", "float32")
        return [torch.randn(n, generator=g).to(device) for _ in range(count)]

    def copy(device: torch.device, variant: int) -> BenchCall:
        dst, src = operands(device, variant, 2)
        return BenchCall(lambda: dst.copy_(src), src)

    def triad(device: torch.device, variant: int) -> BenchCall:
        a, b, c = operands(device, variant, 3)
        return BenchCall(lambda: torch.add(b, c, alpha=3.0, out=a), b, c)

    head = min(n, REFERENCE_ELEMENTS)

    def host_operands(count: int, variant: int) -> list[torch.Tensor]:
        g = case_generator(f"{challenge}#{variant}", "stream", "bandwidth", "float32")
        return [torch.randn(n, generator=g)[:head].to(torch.float64) for _ in range(count)]

    def select(output: Any) -> torch.Tensor:
        return _first(output)[:head]

    def copy_reference(variant: int = 0) -> ReferenceCheck:
        _, src = host_operands(2, variant)
        return ReferenceCheck(select, src.to(torch.float32), Tolerance(0.0, 0.0, "a copy is exact"))

    def triad_reference(variant: int = 0) -> ReferenceCheck:
        _, b, c = host_operands(3, variant)
        return ReferenceCheck(select, (b + 3.0 * c).to(torch.float32), elementwise_tolerance("float32"))

    return [
        Benchmark(
            f"stream copy {buffer_bytes >> 20} MiB",
            "bandwidth",
            "float32",
            0,
            2 * 4 * n,
            copy,
            {"elements": n, "operation": "copy"},
            copy_reference,
        ),
        Benchmark(
            f"stream triad {buffer_bytes >> 20} MiB",
            "bandwidth",
            "float32",
            2 * n,
            3 * 4 * n,
            triad,
            {"elements": n, "operation": "triad"},
            triad_reference,
        ),
    ]


def _supports_gqa() -> bool:
    """Whether this torch's SDPA takes ``enable_gqa`` (2.5+); older ones get expanded K and V."""
    try:
        q, kv = torch.zeros(1, 2, 1, 4), torch.zeros(1, 1, 1, 4)
        F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


_GQA_KWARG = _supports_gqa()


def attention_benchmarks(
    seq: int, context: int, heads: int, kv_heads: int, head_dim: int, dtypes: list[str], challenge: str
) -> list[Benchmark]:
    """Causal prefill over ``seq`` tokens, and one-token decode over a ``context``-long KV cache (GQA)."""
    out = []
    for dtype in dtypes:
        size = element_size(dtype)

        def prefill(device: torch.device, variant: int, dtype: str = dtype) -> BenchCall:
            g = case_generator(f"{challenge}#{variant}", "attention_prefill", str(seq), dtype)
            q, k, v = (
                torch.randn(1, heads, seq, head_dim, generator=g).to(device, torch_dtype(dtype))
                for _ in range(3)
            )
            return BenchCall(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), q, k, v)

        def decode(device: torch.device, variant: int, dtype: str = dtype) -> BenchCall:
            g = case_generator(f"{challenge}#{variant}", "attention_decode", str(context), dtype)
            q = torch.randn(1, heads, 1, head_dim, generator=g).to(device, torch_dtype(dtype))
            k, v = (
                torch.randn(1, kv_heads, context, head_dim, generator=g).to(device, torch_dtype(dtype))
                for _ in range(2)
            )
            if _GQA_KWARG:
                return BenchCall(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), q, k, v)
            groups = heads // kv_heads  # older torch: expand once, outside the timed call
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
            return BenchCall(lambda: F.scaled_dot_product_attention(q, k, v), q, k, v)

        def prefill_reference(variant: int = 0, dtype: str = dtype) -> ReferenceCheck:
            g = case_generator(f"{challenge}#{variant}", "attention_prefill", str(seq), dtype)
            q, k, v = (
                torch.randn(1, heads, seq, head_dim, generator=g).to(torch_dtype(dtype))[:, :REFERENCE_HEADS]
                for _ in range(3)
            )
            q64, k64, v64 = (t.to(torch.float64) for t in (q, k, v))
            expected = attention_reference(q64, k64, v64, None, True)
            return ReferenceCheck(
                lambda out: _first(out)[:, :REFERENCE_HEADS],
                expected.to(torch_dtype(dtype)),
                attention_tolerance(dtype, head_dim, seq, qk_term=16.0, v_max=6.0),
            )

        def decode_reference(variant: int = 0, dtype: str = dtype) -> ReferenceCheck:
            g = case_generator(f"{challenge}#{variant}", "attention_decode", str(context), dtype)
            q = torch.randn(1, heads, 1, head_dim, generator=g).to(torch_dtype(dtype))
            k, v = (
                torch.randn(1, kv_heads, context, head_dim, generator=g).to(torch_dtype(dtype))
                for _ in range(2)
            )
            q64, k64, v64 = (t.to(torch.float64) for t in (q, k, v))
            expected = attention_reference(q64, k64, v64, None, False)
            return ReferenceCheck(
                _first,
                expected.to(torch_dtype(dtype)),
                attention_tolerance(dtype, head_dim, context, qk_term=16.0, v_max=6.0),
            )

        # Causal prefill does about half the work of full attention: QK^T and PV, 2 FLOPs each.
        prefill_flops = 2 * 2 * heads * seq * seq * head_dim // 2
        out.append(
            Benchmark(
                f"attention prefill s{seq}",
                "attention",
                dtype,
                prefill_flops,
                size * 4 * heads * seq * head_dim,
                prefill,
                {"phase": "prefill", "seq": seq, "heads": heads, "head_dim": head_dim, "causal": True},
                prefill_reference,
            )
        )
        out.append(
            Benchmark(
                f"attention decode ctx{context}",
                "attention",
                dtype,
                2 * 2 * heads * context * head_dim,
                size * (2 * kv_heads * context * head_dim + 2 * heads * head_dim),
                decode,
                {
                    "phase": "decode",
                    "context": context,
                    "heads": heads,
                    "kv_heads": kv_heads,
                    "head_dim": head_dim,
                },
                decode_reference,
            )
        )
    return out
