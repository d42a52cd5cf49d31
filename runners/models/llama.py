"""Llama-style decoder: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU, KV cache.

Parameter names follow Hugging Face's ``LlamaForCausalLM`` so published checkpoints load as
they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LlamaConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "num_key_value_heads" not in known and "num_attention_heads" in known:
            known["num_key_value_heads"] = known["num_attention_heads"]
        config = cls(**known)
        if config.hidden_size % config.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        if config.num_attention_heads % config.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        return config

    @classmethod
    def small(cls) -> LlamaConfig:
        return cls(
            vocab_size=512,
            hidden_size=128,
            intermediate_size=344,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in float32 at least, as the reference implementation does for bf16/fp16.
        acc = x.to(torch.promote_types(x.dtype, torch.float32))
        acc = acc * torch.rsqrt(acc.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * acc.to(x.dtype)


class KVCache:
    """Preallocated keys and values for every layer: [batch, kv_heads, max_len, head_dim]."""

    def __init__(
        self, config: LlamaConfig, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device
    ) -> None:
        shape = (batch, config.num_key_value_heads, max_len, config.head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.values = [
            torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)
        ]
        self.length = 0


class SlotCache(KVCache):
    """A KV cache whose rows are independent sequences at their own positions (continuous batching).

    ``positions[row]`` is where row's next key goes; a decode step (one token per row) writes each
    row at its own position and attends to that row's prefix only. Rows join by ``admit`` (the keys
    and values of a prefill copied in) and leave by being overwritten: a server admits requests
    between decode steps while the others keep decoding."""

    def __init__(
        self, config: LlamaConfig, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device
    ) -> None:
        super().__init__(config, batch, max_len, dtype=dtype, device=device)
        self.max_len = max_len
        self.positions = torch.zeros(batch, dtype=torch.long, device=device)

    def admit(self, rows: list[int], prefill: KVCache) -> None:
        """Rows ``rows`` continue the sequences whose keys and values ``prefill`` holds (row for row)."""
        index = torch.tensor(rows, device=self.positions.device)
        length = prefill.length
        for layer in range(len(self.keys)):
            self.keys[layer][index, :, :length] = prefill.keys[layer][:, :, :length]
            self.values[layer][index, :, :length] = prefill.values[layer][:, :, :length]
        self.positions[index] = length


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class _Attention(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None,
        layer: int,
        start: int,
    ) -> torch.Tensor:
        b, s, _ = x.shape
        c = self.c
        q = self.q_proj(x).view(b, s, c.num_attention_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if isinstance(cache, SlotCache):  # one token per row, each row at its own position
            rows = torch.arange(b, device=x.device)
            where = cache.positions.clamp(max=cache.max_len - 1)
            cache.keys[layer][rows, :, where] = k[:, :, 0]
            cache.values[layer][rows, :, where] = v[:, :, 0]
            groups = c.num_attention_heads // c.num_key_value_heads
            keys = cache.keys[layer].repeat_interleave(groups, dim=1)
            values = cache.values[layer].repeat_interleave(groups, dim=1)
            keep = torch.arange(cache.max_len, device=x.device)[None, :] <= where[:, None]
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=keep[:, None, None, :])
            return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))
        if cache is not None:
            cache.keys[layer][:, :, start : start + s] = k
            cache.values[layer][:, :, start : start + s] = v
            k = cache.keys[layer][:, :, : start + s]
            v = cache.values[layer][:, :, : start + s]
        groups = c.num_attention_heads // c.num_key_value_heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        if s == 1:
            out = F.scaled_dot_product_attention(q, k, v)  # one query sees the whole prefix
        elif start == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # a chunk after a prefix: query i sees keys up to start + i
            rows = torch.arange(s, device=x.device)[:, None] + start
            keep = torch.arange(start + s, device=x.device)[None, :] <= rows
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class _MLP(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class _Layer(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.self_attn = _Attention(c)
        self.mlp = _MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class _Body(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class LlamaDecoder(nn.Module):
    """Causal language model; ``forward`` returns logits for every input position."""

    optional_keys: tuple[str, ...] = ()

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.model = _Body(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def _rope(self, start: int, length: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        # Angles in float64 then cast: the table itself must not add error in low precision.
        inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float64) / c.head_dim))
        positions = torch.arange(start, start + length, dtype=torch.float64)
        angles = torch.outer(positions, inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        return (angles.cos().to(x.dtype).to(x.device), angles.sin().to(x.dtype).to(x.device))

    def _rope_rows(self, positions: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary tables for one token per row at ``positions[row]``: [batch, 1, 1, head_dim]."""
        c = self.config
        inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float64) / c.head_dim))
        angles = torch.outer(positions.to("cpu", torch.float64), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)[:, None, None, :]
        return (angles.cos().to(x.dtype).to(x.device), angles.sin().to(x.dtype).to(x.device))

    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        start = cache.length if cache is not None else 0
        x = self.model.embed_tokens(input_ids)
        if isinstance(cache, SlotCache):
            if input_ids.shape != (cache.positions.shape[0], 1):
                raise ValueError("a slot cache decodes one token per row")
            cos, sin = self._rope_rows(cache.positions, x)
        else:
            cos, sin = self._rope(start, input_ids.shape[1], x)
        for index, layer in enumerate(self.model.layers):
            x = x + layer.self_attn(layer.input_layernorm(x), cos, sin, cache, index, start)  # type: ignore[operator]  # an nn.Module attribute is Tensor | Module to mypy
            x = x + layer.mlp(layer.post_attention_layernorm(x))  # type: ignore[operator]  # an nn.Module attribute is Tensor | Module to mypy
        if isinstance(cache, SlotCache):
            cache.positions += 1
        elif cache is not None:
            cache.length = start + input_ids.shape[1]
        x = self.model.norm(x)
        head = self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight
        return F.linear(x, head)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        weight = self.model.embed_tokens.weight
        return KVCache(self.config, batch, max_len, dtype=weight.dtype, device=weight.device)

    def new_slot_cache(self, batch: int, max_len: int) -> SlotCache:
        weight = self.model.embed_tokens.weight
        return SlotCache(self.config, batch, max_len, dtype=weight.dtype, device=weight.device)

    @torch.inference_mode()
    def generate(self, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
        """Greedy continuation of ``prompt`` [batch, length]; returns the new tokens."""
        cache = self.new_cache(prompt.shape[0], prompt.shape[1] + new_tokens)
        token = self(prompt, cache)[:, -1].argmax(-1, keepdim=True)
        out = [token]
        for _ in range(new_tokens - 1):
            token = self(token, cache)[:, -1].argmax(-1, keepdim=True)
            out.append(token)
        return torch.cat(out, dim=1)
