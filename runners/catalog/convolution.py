"""2-D convolutions: NCHW, channels_last (NHWC memory) and depthwise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from runners.catalog.base import (
    FLOAT_DTYPES,
    TORCH_TESTING_DEFAULTS,
    Case,
    Derived,
    Inputs,
    Kernel,
    Span,
    Tolerance,
    abs32,
    accumulation_bound,
    accumulation_tolerance,
    element_size,
    gamma,
    inject_nan_inf,
    randn,
    uniform,
    unit_roundoff,
)

# Where the conv2d bound allows the convolution's own rounding to the output dtype before the bias add.
BIAS_ROUNDING_SOURCE = (
    "; plus u conv(|x|, |w|) for the convolution rounded to the output dtype before the bias is added: "
    "PyTorch adds the bias as a separate operation after cuDNN and MIOpen convolutions "
    "(aten/src/ATen/native/Convolution.cpp, _convolution: output.add_(reshape_bias(...))), which an H200 "
    "showed (bench/evidence/h200-2026-11-30)"
)


def _rounding_allowance(products: torch.Tensor, k: int, dtype: str) -> torch.Tensor:
    """u conv(|x|, |w|) in float64: one rounding of the convolution (without its bias) to `dtype`. The
    magnitude, summed in float32 over k non-negative terms, may be low by gamma_k(u32) of itself."""
    if dtype not in TORCH_TESTING_DEFAULTS:
        return torch.zeros((), dtype=torch.float64)
    factor = unit_roundoff(dtype) / max(1.0 - gamma(k, unit_roundoff("float32")), 1e-300)
    return torch.nan_to_num(products.to(torch.float64) * factor, nan=0.0)


DENSE_CASES = (
    Case(
        "resnet_3x3",
        {
            "N": 1,
            "C": Span(48, 96, 16),
            "H": Span(20, 36),
            "W": Derived("H"),
            "O": Span(48, 96, 16),
            "R": 3,
            "stride": 1,
            "pad": 1,
        },
    ),
    Case(
        "pointwise_1x1_wide_input",
        {
            "N": 2,
            "C": Span(192, 320, 32),
            "H": Span(10, 18),
            "W": Derived("H"),
            "O": Span(48, 96, 16),
            "R": 1,
            "stride": 1,
            "pad": 0,
        },
    ),
    Case(
        "stem_7x7_stride2_odd",
        {
            "N": 1,
            "C": 3,
            "H": Span(51, 83, odd=True),
            "W": Span(51, 83, odd=True),
            "O": Span(12, 20),
            "R": 7,
            "stride": 2,
            "pad": 3,
        },
        edge="odd_size",
    ),
    # C*R*R >= 16384 terms per output (C >= 1024, R = 4), all positive.
    Case(
        "long_reduction",
        {
            "N": 1,
            "C": Span(1024, 1280, 64),
            "H": Span(4, 6),
            "W": Derived("H"),
            "O": 4,
            "R": 4,
            "stride": 1,
            "pad": 0,
        },
        edge="long_reduction",
    ),
    Case(
        "nan_inf",
        {
            "N": 1,
            "C": Span(6, 12),
            "H": Span(7, 12),
            "W": Span(7, 12),
            "O": Span(6, 12),
            "R": 3,
            "stride": 1,
            "pad": 1,
        },
        edge="nan_inf",
    ),
    Case(
        "empty_batch",
        {
            "N": 0,
            "C": Span(4, 12),
            "H": Span(6, 10),
            "W": Derived("H"),
            "O": Span(4, 12),
            "R": 3,
            "stride": 1,
            "pad": 1,
        },
        edge="empty",
    ),
)

DEPTHWISE_CASES = (
    Case(
        "mobilenet_3x3",
        {"N": 1, "C": Span(96, 160, 16), "H": Span(20, 36), "W": Derived("H"), "R": 3, "stride": 1, "pad": 1},
    ),
    Case(
        "mobilenet_3x3_stride2",
        {
            "N": 2,
            "C": Span(48, 96, 16),
            "H": Span(24, 40, 2),
            "W": Derived("H"),
            "R": 3,
            "stride": 2,
            "pad": 1,
        },
    ),
    Case(
        "convnext_7x7",
        {"N": 1, "C": Span(64, 128, 32), "H": Span(20, 36), "W": Derived("H"), "R": 7, "stride": 1, "pad": 3},
    ),
    Case(
        "odd_5x5",
        {
            "N": 1,
            "C": Span(9, 19, odd=True),
            "H": Span(13, 23, odd=True),
            "W": Span(13, 23, odd=True),
            "R": 5,
            "stride": 1,
            "pad": 2,
        },
        edge="odd_size",
    ),
    Case(
        "nan_inf",
        {"N": 1, "C": Span(6, 12), "H": Span(7, 12), "W": Span(7, 12), "R": 3, "stride": 1, "pad": 1},
        edge="nan_inf",
    ),
    Case(
        "empty_batch",
        {"N": 0, "C": Span(4, 12), "H": Span(6, 10), "W": Derived("H"), "R": 3, "stride": 1, "pad": 1},
        edge="empty",
    ),
)


class Conv2dKernel(Kernel):
    """conv2d with bias; `depthwise` uses groups = C, `channels_last` hands NHWC memory to the device."""

    dtypes = FLOAT_DTYPES

    def __init__(
        self,
        name: str,
        description: str,
        cases: tuple[Case, ...],
        *,
        channels_last: bool = False,
        depthwise: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self.cases = cases
        self.channels_last = channels_last
        self.depthwise = depthwise

    def _out_channels(self, case: Case) -> int:
        return case["C"] if self.depthwise else case["O"]

    def _reduction(self, case: Case) -> int:
        return (1 if self.depthwise else case["C"]) * case["R"] * case["R"]

    def _output_hw(self, case: Case) -> tuple[int, int]:
        def size(n: int) -> int:
            return (n + 2 * case["pad"] - case["R"]) // case["stride"] + 1

        return size(case["H"]), size(case["W"])

    def generate(self, case: Case, dtype: str, g: torch.Generator) -> Inputs:
        in_per_group = 1 if self.depthwise else case["C"]
        x_shape = (case["N"], case["C"], case["H"], case["W"])
        w_shape = (self._out_channels(case), in_per_group, case["R"], case["R"])
        if case.edge == "long_reduction":
            x, w = uniform(x_shape, dtype, g, 0.0, 1.0), uniform(w_shape, dtype, g, 0.0, 1.0)
        else:
            x, w = randn(x_shape, dtype, g), randn(w_shape, dtype, g, scale=self._reduction(case) ** -0.5)
        if case.edge == "nan_inf":
            x = inject_nan_inf(x, g)
        return {"x": x, "weight": w, "bias": randn((self._out_channels(case),), dtype, g)}

    def arrange(self, inputs: Inputs, case: Case) -> Inputs:
        geometry = {
            "stride": case["stride"],
            "pad": case["pad"],
            "groups": case["C"] if self.depthwise else 1,
        }
        if self.channels_last:
            return {
                **inputs,
                **geometry,
                "x": inputs["x"].contiguous(memory_format=torch.channels_last),
                "weight": inputs["weight"].contiguous(memory_format=torch.channels_last),
            }
        return {**inputs, **geometry}

    def run(self, inputs: Inputs) -> torch.Tensor:
        return F.conv2d(
            inputs["x"],
            inputs["weight"],
            inputs["bias"],
            stride=inputs["stride"],
            padding=inputs["pad"],
            groups=inputs["groups"],
        )

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return F.conv2d(
            inputs["x"],
            inputs["weight"],
            inputs["bias"],
            stride=inputs["stride"],
            padding=inputs["pad"],
            groups=inputs["groups"],
        )

    def tolerance(self, case: Case, dtype: str) -> Tolerance:
        tolerance = accumulation_tolerance(dtype, self._reduction(case) + 1, "(conv(|x|, |w|) + |b|)")
        return Tolerance(tolerance.atol, tolerance.rtol, tolerance.source + BIAS_ROUNDING_SOURCE)

    def error_bound(self, inputs: Inputs, case: Case, dtype: str) -> torch.Tensor:
        geometry = {"stride": inputs["stride"], "padding": inputs["pad"], "groups": inputs["groups"]}
        products = F.conv2d(abs32(inputs["x"]), abs32(inputs["weight"]), None, **geometry)
        magnitude = products + abs32(inputs["bias"]).reshape(1, -1, 1, 1)
        bound = accumulation_bound(magnitude, self._reduction(case) + 1, dtype)
        # The convolution may be rounded to the output dtype before the bias is added (BIAS_ROUNDING_SOURCE):
        # |fl(conv) - conv| <= u |conv| <= u conv(|x|, |w|), the products' magnitude bounded as above.
        return bound + _rounding_allowance(products, self._reduction(case), dtype)

    def flops(self, case: Case) -> int:
        ho, wo = self._output_hw(case)
        return 2 * case["N"] * self._out_channels(case) * ho * wo * self._reduction(case)

    def bytes(self, case: Case, dtype: str = "float32") -> int:
        ho, wo = self._output_hw(case)
        out_c = self._out_channels(case)
        weights = out_c * (1 if self.depthwise else case["C"]) * case["R"] ** 2
        activations = case["N"] * (case["C"] * case["H"] * case["W"] + out_c * ho * wo)
        return element_size(dtype) * (weights + activations + out_c)


KERNELS: tuple[Kernel, ...] = (
    Conv2dKernel("conv2d_nchw", "conv2d with bias, NCHW memory", DENSE_CASES),
    Conv2dKernel(
        "conv2d_channels_last",
        "conv2d with bias, channels_last (NHWC) memory",
        DENSE_CASES,
        channels_last=True,
    ),
    Conv2dKernel(
        "conv2d_depthwise", "depthwise conv2d (groups = channels) with bias", DEPTHWISE_CASES, depthwise=True
    ),
)
