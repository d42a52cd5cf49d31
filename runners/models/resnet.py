"""ResNet-style image classifier (basic residual blocks, batch norm in inference mode).

Parameter names follow torchvision's ResNet where the structures coincide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ResNetConfig:
    in_channels: int = 3
    image_size: int = 32
    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 1, 1)
    num_classes: int = 10

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("widths", "blocks"):
            if key in known:
                known[key] = tuple(int(v) for v in known[key])
        config = cls(**known)
        if len(config.widths) != len(config.blocks) or not config.widths:
            raise ValueError("widths and blocks must be non-empty and of equal length")
        return config

    @classmethod
    def small(cls) -> ResNetConfig:
        return cls()


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels)


class _BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = _bn(out_ch)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), _bn(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNetClassifier(nn.Module):
    """Images [N, C, H, W] in, class logits [N, classes] out."""

    optional_keys: tuple[str, ...] = ()

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        first = config.widths[0]
        self.conv1 = nn.Conv2d(config.in_channels, first, 3, padding=1, bias=False)
        self.bn1 = _bn(first)
        stages = []
        in_ch = first
        for index, (width, count) in enumerate(zip(config.widths, config.blocks, strict=True)):
            blocks = []
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(_BasicBlock(in_ch, width, stride))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.ModuleList(stages)
        self.fc = nn.Linear(in_ch, config.num_classes)
        self.eval()  # batch norm uses running statistics: this is an inference model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in self.layers:
            x = stage(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
