"""Float64 references written separately from the device modules.

The BERT reference is plain NumPy from the tensors by name, so an error in the torch module
(a wrong mask, a swapped projection) cannot hide by being repeated in the reference. The
decoder and the CNN are compared against their own module cast to float64 on the CPU,
which checks the device and its low-precision kernels, not the architecture code.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from runners.models.bert import BertConfig


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray, exact: bool) -> np.ndarray:
    if exact:
        # NumPy has no vectorized erf; torch's float64 erf is a libm-grade primitive.
        erf = torch.special.erf(torch.from_numpy(x / math.sqrt(2.0))).numpy()
        return 0.5 * x * (1.0 + erf)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def bert_reference_embeddings(
    state: dict[str, torch.Tensor], config: BertConfig, input_ids: np.ndarray, attention_mask: np.ndarray
) -> np.ndarray:
    """Mean-pooled, L2-normalized sentence embeddings in float64, [batch, hidden]."""
    w = {name: t.detach().to(torch.float64).cpu().numpy() for name, t in state.items()}
    batch, seq = input_ids.shape
    heads = config.num_attention_heads
    head_dim = config.hidden_size // heads
    eps = config.layer_norm_eps
    x = (
        w["embeddings.word_embeddings.weight"][input_ids]
        + w["embeddings.position_embeddings.weight"][np.arange(seq)][None]
        + w["embeddings.token_type_embeddings.weight"][0][None, None]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    # Padding keys get -inf before the softmax; real tokens always exist so no row is empty.
    key_bias = np.where(attention_mask[:, None, None, :] > 0, 0.0, -np.inf)
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."

        def dense(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def heads_of(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3)

        q = heads_of(dense(x, "attention.self.query"))
        k = heads_of(dense(x, "attention.self.key"))
        v = heads_of(dense(x, "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + key_bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, config.hidden_size)
        x = _layer_norm(
            dense(context, "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        inner = _gelu(dense(x, "intermediate.dense"), exact=config.hidden_act == "gelu")
        x = _layer_norm(
            dense(inner, "output.dense") + x,
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
            eps,
        )
    mask = attention_mask[..., None].astype(np.float64)
    pooled = (x * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def float64_copy(module: nn.Module, module_type: type[nn.Module], config: object) -> nn.Module:
    """The same architecture and weights in float64 on the CPU."""
    copy = module_type(config)
    copy.load_state_dict(module.state_dict())
    return copy.to(device="cpu", dtype=torch.float64).eval()
