"""Probes of the bfloat16 cases an honest H200 failed in bench/device_check.py (session 24): cumsum,
conv2d (NCHW and channels-last) and SDPA's fully masked rows. Each probe prints what the device's
torch computes against the float64 reference and against a model of the suspected cause, so a
finding is named by evidence rather than guessed from the failure message.

    python bench/cuda_findings_probe.py [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F


def cumsum_probe(device: str) -> None:
    g = torch.Generator().manual_seed(0)
    for n in (151, 2081, 19968):
        x = torch.randn(2, n, generator=g).bfloat16()
        ref = x.double().cumsum(-1)
        out = torch.cumsum(x.to(device), -1).cpu().double()
        f32 = x.float().cumsum(-1).bfloat16().double()  # float32 accumulation, one rounding at the end
        acc = torch.zeros(2, dtype=torch.bfloat16)  # sequential bfloat16 accumulation
        seq = torch.empty(2, n, dtype=torch.float64)
        for j in range(n):
            acc = (acc + x[:, j]).bfloat16()
            seq[:, j] = acc.double()
        print(
            f"cumsum bf16 n={n}: max|out-ref| {float((out - ref).abs().max()):.4g}, "
            f"float32-acc model {float((f32 - ref).abs().max()):.4g}, "
            f"bf16-seq model {float((seq - ref).abs().max()):.4g}; out==float32-acc "
            f"{float((out == f32).double().mean()):.3f}, out==bf16-seq {float((out == seq).double().mean()):.3f}, "
            f"cumsum(out dtype=float32) max err {float((torch.cumsum(x.to(device), -1, dtype=torch.float32).cpu().double() - ref).abs().max()):.4g}"
        )


def conv_probe(device: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 25, 25, generator=g).bfloat16()
    w = (torch.randn(64, 64, 3, 3, generator=g) / 24).bfloat16()
    ref = F.conv2d(x.double(), w.double(), padding=1)
    f32 = F.conv2d(x.float(), w.float(), padding=1).bfloat16().double()
    for label, ctx in (
        ("cudnn", contextlib.nullcontext),
        (
            "cudnn deterministic",
            lambda: torch.backends.cudnn.flags(enabled=True, deterministic=True, benchmark=False),
        ),
        ("no cudnn", lambda: torch.backends.cudnn.flags(enabled=False)),
    ):
        for fmt in ("nchw", "channels_last"):
            xi, wi = x.to(device), w.to(device)
            if fmt == "channels_last":
                xi, wi = xi.to(memory_format=torch.channels_last), wi.to(memory_format=torch.channels_last)
            with ctx():
                try:
                    out = F.conv2d(xi, wi, padding=1).cpu().double()
                except RuntimeError as exc:
                    print(f"conv2d bf16 {fmt} {label}: {exc}")
                    continue
            zeros = int(((out == 0) & (ref.abs() > 1e-3)).sum())
            print(
                f"conv2d bf16 {fmt} {label}: max|out-ref| {float((out - ref).abs().max()):.4g} "
                f"(float32-acc model {float((f32 - ref).abs().max()):.4g}), zeros where |ref|>1e-3: {zeros}, "
                f"out==float32-acc {float((out == f32).double().mean()):.3f}"
            )


def sdpa_probe(device: str) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 13, 32, generator=g).bfloat16()
    k = torch.randn(1, 4, 15, 32, generator=g).bfloat16()
    v = torch.randn(1, 4, 15, 32, generator=g).bfloat16()
    mask = torch.rand(13, 15, generator=g) > 0.3
    mask[::3] = False
    rows = torch.arange(13) % 3 == 0
    for backend in (
        None,
        SDPBackend.MATH,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.CUDNN_ATTENTION,
    ):
        ctx = sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext()
        try:
            with ctx:
                out = F.scaled_dot_product_attention(
                    q.to(device), k.to(device), v.to(device), attn_mask=mask.to(device)
                )
        except RuntimeError as exc:
            print(f"sdpa {backend}: refused ({str(exc).splitlines()[0][:100]})")
            continue
        out = out.cpu().double()
        masked = out[:, :, rows]
        mean_v = v.double().mean(-2, keepdim=True).expand_as(out)[:, :, rows]
        print(
            f"sdpa {backend}: masked rows: NaN {int(masked.isnan().sum())}, zero {int((masked == 0).sum())}, "
            f"of {masked.numel()}; max|masked - mean(v)| {float((masked - mean_v).abs().nan_to_num(9).max()):.3g}"
        )
    cpu = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)[:, :, rows]
    print(
        f"sdpa on cpu: masked rows NaN {int(cpu.isnan().sum())}, zero {int((cpu == 0).sum())}, of {cpu.numel()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    print(f"torch {torch.__version__} on {args.device}")
    for probe in (cumsum_probe, conv_probe, sdpa_probe):
        try:
            probe(args.device)
        except Exception as exc:  # noqa: BLE001 - a probe's failure is itself a result to print
            print(f"{probe.__name__}: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
