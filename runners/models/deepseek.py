"""DeepSeek-V3-style decoder: multi-head latent attention (MLA) with the decoupled RoPE key, a dense
first FFN then mixture-of-experts layers (group-limited, bias-corrected sigmoid routing, one shared
expert), and one multi-token prediction (MTP) module.

Parameter names follow DeepSeek-V3's Hugging Face checkpoint (README_WEIGHTS.md and
modeling_deepseek.py of deepseek-ai/DeepSeek-V3): ``model.layers.N.self_attn.{q_a_proj,
q_a_layernorm, q_b_proj, kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj}``,
``model.layers.N.mlp.{gate.weight, gate.e_score_correction_bias, experts.E.{gate,up,down}_proj,
shared_experts.*}``, and the MTP module as layer ``num_hidden_layers`` with ``enorm``, ``hnorm``,
``eh_proj`` and ``shared_head.norm``. The MTP module shares the embedding and the output head with
the main model (README_WEIGHTS.md: "Shares parameters"), so a file holds them once, as
``model.embed_tokens.weight`` and ``lm_head.weight``.

The computations are the conformance catalog's, not copies: routing is ``runners.catalog.moe.route``
(in float32, as Hugging Face's DeepseekV3TopkRouter), the expert layer ``moe_experts`` (token
permutation, grouped SwiGLU GEMMs, weighted un-permutation, the shared expert), attention
``runners.catalog.latent_attention.mla_absorbed`` over the compressed cache (DeepSeek's default
"absorb" form) with the interleaved ``rotate_interleaved`` RoPE, and the MTP combination
``runners.catalog.multi_token_prediction.mtp_combine``. The float64 reference
(runners/models/reference.py ``deepseek_reference_logits``) uses the catalog's reference forms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from runners.catalog.latent_attention import mla_absorbed, rope_tables, rotate_interleaved
from runners.catalog.moe import moe_experts, route
from runners.catalog.multi_token_prediction import mtp_combine
from runners.catalog.quantized import Weight
from runners.models.fp8 import Fp8Linear, Fp8Weight
from runners.models.llama import LlamaDecoder, RMSNorm

# Building the module (on the meta device at upload) costs time per expert: a hostile config cannot ask
# for millions. DeepSeek-V3 has 256 routed experts in each of 58 MoE layers (and the MTP module's).
MAX_ROUTED_EXPERTS = 1024
MAX_EXPERT_MODULES = 65536


@dataclass(frozen=True)
class DeepseekV3Config:
    """The fields of DeepSeek-V3's config.json that this architecture reads (same names)."""

    vocab_size: int = 129280
    hidden_size: int = 7168
    intermediate_size: int = 18432
    moe_intermediate_size: int = 2048
    num_hidden_layers: int = 61
    num_nextn_predict_layers: int = 1
    num_attention_heads: int = 128
    n_shared_experts: int = 1
    n_routed_experts: int = 256
    num_experts_per_tok: int = 8
    n_group: int = 8
    topk_group: int = 4
    routed_scaling_factor: float = 2.5
    norm_topk_prob: bool = True
    scoring_func: str = "sigmoid"
    first_k_dense_replace: int = 3
    q_lora_rank: int = 1536
    kv_lora_rank: int = 512
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    max_position_embeddings: int = 163840
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeepseekV3Config:
        if data.get("rope_scaling"):
            raise ValueError("rope_scaling (YaRN) is not supported by this architecture")
        if data.get("tie_word_embeddings"):
            raise ValueError("DeepSeek-V3 does not tie its embeddings")
        if data.get("topk_method", "noaux_tc") != "noaux_tc":
            raise ValueError(f"topk_method {data['topk_method']!r}: only noaux_tc is supported")
        if data.get("moe_layer_freq", 1) != 1:
            raise ValueError("moe_layer_freq must be 1")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        config = cls(**known)
        ints = {k: getattr(config, k) for k, f in cls.__dataclass_fields__.items() if f.type == "int"}
        may_be_zero = ("first_k_dense_replace", "num_nextn_predict_layers")
        bad = sorted(
            k
            for k, v in ints.items()
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k in may_be_zero else 1)
        )
        if bad:
            raise ValueError(f"{bad[0]} must be a positive integer")
        if config.scoring_func not in ("sigmoid", "softmax"):
            raise ValueError(f"unsupported scoring_func {config.scoring_func!r}")
        if config.n_routed_experts < 1 or config.n_shared_experts < 1:
            raise ValueError("n_routed_experts and n_shared_experts must be at least 1")
        if config.n_group < 1 or config.n_routed_experts % config.n_group:
            raise ValueError("n_group must divide n_routed_experts")
        per_group = config.n_routed_experts // config.n_group
        if not 1 <= config.topk_group <= config.n_group or (config.n_group > 1 and per_group < 2):
            raise ValueError("topk_group must be in 1..n_group, with at least two experts per group")
        if not 1 <= config.num_experts_per_tok <= config.topk_group * per_group:
            raise ValueError("num_experts_per_tok must be in 1..topk_group * experts per group")
        if config.qk_rope_head_dim % 2 or config.qk_rope_head_dim < 2:
            raise ValueError("qk_rope_head_dim must be a positive even number")
        if config.num_nextn_predict_layers > 1:
            raise ValueError("at most one MTP module (num_nextn_predict_layers <= 1) is supported")
        if config.n_routed_experts > MAX_ROUTED_EXPERTS:
            raise ValueError(f"at most {MAX_ROUTED_EXPERTS} routed experts are accepted")
        moe_layers = config.num_hidden_layers + config.num_nextn_predict_layers - config.first_k_dense_replace
        if max(moe_layers, 0) * config.n_routed_experts > MAX_EXPERT_MODULES:
            raise ValueError(f"more than {MAX_EXPERT_MODULES} expert modules in all")
        if config.q_lora_rank < 1:
            raise ValueError("q_lora_rank must be at least 1 (the low-rank query of DeepSeek-V3)")
        return config

    @classmethod
    def small(cls) -> DeepseekV3Config:
        """deepseek-v3-tiny: the V3 structure (dense first layer, 16 routed experts in 4 groups of which
        2 are kept, top-4, one shared expert, MLA with q/kv LoRA ranks and a 16-wide RoPE key, one MTP
        module) at sizes whose CPU run and float64 reference take seconds."""
        return cls(
            vocab_size=512,
            hidden_size=256,
            intermediate_size=512,
            moe_intermediate_size=64,
            num_hidden_layers=4,
            num_nextn_predict_layers=1,
            num_attention_heads=4,
            n_shared_experts=1,
            n_routed_experts=16,
            num_experts_per_tok=4,
            n_group=4,
            topk_group=2,
            routed_scaling_factor=2.5,
            first_k_dense_replace=1,
            q_lora_rank=128,
            kv_lora_rank=64,
            qk_nope_head_dim=32,
            qk_rope_head_dim=16,
            v_head_dim=32,
            max_position_embeddings=256,
        )

    @classmethod
    def small_fp8(cls) -> DeepseekV3Config:
        """The FP8 test model's configuration: deepseek-v3-tiny with the dense layer's feed-forward width
        2048, so that one projection (its down_proj) reduces over K = 2048 (runners/models/fp8.py
        ``plant_activation_outliers`` says why)."""
        return replace(cls.small(), intermediate_size=2048)

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def softmax_scale(self) -> float:
        return float(self.qk_head_dim**-0.5)  # no YaRN: rope_scaling is refused above

    def is_moe(self, layer: int) -> bool:
        return layer >= self.first_k_dense_replace


class MlaCache:
    """Per layer the compressed cache DeepSeek keeps: c_kv (B, L, kv_lora_rank), normalised, and the
    rotated RoPE key k_pe (B, L, qk_rope_head_dim). ``length`` tokens are filled."""

    def __init__(
        self, config: DeepseekV3Config, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device
    ) -> None:
        layers = config.num_hidden_layers
        self.c_kv = [
            torch.zeros(batch, max_len, config.kv_lora_rank, dtype=dtype, device=device)
            for _ in range(layers)
        ]
        self.k_pe = [
            torch.zeros(batch, max_len, config.qk_rope_head_dim, dtype=dtype, device=device)
            for _ in range(layers)
        ]
        self.length = 0


class MlaSlotCache(MlaCache):
    """A compressed cache whose rows are independent sequences at their own positions (continuous
    batching, as runners/models/llama.py ``SlotCache``): a decode step writes each row at
    ``positions[row]`` and attends to that row's prefix only; ``admit`` copies in a prefill's rows."""

    def __init__(
        self, config: DeepseekV3Config, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device
    ) -> None:
        super().__init__(config, batch, max_len, dtype=dtype, device=device)
        self.max_len = max_len
        self.positions = torch.zeros(batch, dtype=torch.long, device=device)

    def admit(self, rows: list[int], prefill: MlaCache) -> None:
        index = torch.tensor(rows, device=self.positions.device)
        length = prefill.length
        for layer in range(len(self.c_kv)):
            self.c_kv[layer][index, :length] = prefill.c_kv[layer][:, :length]
            self.k_pe[layer][index, :length] = prefill.k_pe[layer][:, :length]
        self.positions[index] = length


def weight_of(projection: nn.Module) -> Weight:
    """The weight a catalog function multiplies directly: an ``nn.Linear``'s, or on the FP8 path the
    ``Fp8Linear``'s codes and scales (which compute their own GEMM)."""
    if isinstance(projection, Fp8Linear):
        return projection.fp8
    weight = projection.weight
    assert isinstance(weight, torch.Tensor)
    return weight


class SwiGlu(nn.Module):
    """gate_proj / up_proj / down_proj: the dense FFN, each routed expert and the shared experts."""

    def __init__(self, hidden: int, inter: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    def stacked(self) -> tuple[Weight, Weight]:
        """(w13 (2I, H), w2 (H, I)) as the catalog's expert functions take them (on the FP8 path the
        codes with their block scales, runners/models/fp8.py)."""
        gate, up = weight_of(self.gate_proj), weight_of(self.up_proj)
        if isinstance(gate, Fp8Weight) and isinstance(up, Fp8Weight):
            return Fp8Weight.stack([gate, up]), weight_of(self.down_proj)
        if isinstance(gate, torch.Tensor) and isinstance(up, torch.Tensor):
            return torch.cat((gate, up)), weight_of(self.down_proj)
        raise TypeError("gate_proj and up_proj on different paths")


class Gate(nn.Module):
    def __init__(self, c: DeepseekV3Config) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c.n_routed_experts, c.hidden_size))
        self.e_score_correction_bias = nn.Parameter(torch.zeros(c.n_routed_experts))


class Moe(nn.Module):
    def __init__(self, c: DeepseekV3Config) -> None:
        super().__init__()
        self.c = c
        self.gate = Gate(c)
        self.experts = nn.ModuleList(
            SwiGlu(c.hidden_size, c.moe_intermediate_size) for _ in range(c.n_routed_experts)
        )
        self.shared_experts = SwiGlu(c.hidden_size, c.moe_intermediate_size * c.n_shared_experts)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(expert ids (T, k), weights (T, k)) in float32, as Hugging Face's DeepseekV3TopkRouter."""
        c = self.c
        wide = torch.promote_types(x.dtype, torch.float32)
        logits = F.linear(x.to(wide), self.gate.weight.to(wide))
        return route(
            logits,
            self.gate.e_score_correction_bias.to(wide),
            score=c.scoring_func,
            k=c.num_experts_per_tok,
            groups=c.n_group,
            topk_groups=c.topk_group,
            normalize=c.norm_topk_prob,
            scale=c.routed_scaling_factor,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        ids, weights = self.route(flat)
        stacks = [expert.stacked() for expert in self.experts]  # type: ignore[operator]  # an nn.Module attribute is Tensor | Module to mypy
        shared_w13, shared_w2 = self.shared_experts.stacked()
        out = moe_experts(
            flat, ids, weights, [s[0] for s in stacks], [s[1] for s in stacks], shared_w13, shared_w2
        )
        return out.reshape(shape)


class Mla(nn.Module):
    def __init__(self, c: DeepseekV3Config) -> None:
        super().__init__()
        self.c = c
        heads = c.num_attention_heads
        self.q_a_proj = nn.Linear(c.hidden_size, c.q_lora_rank, bias=False)
        self.q_a_layernorm = RMSNorm(c.q_lora_rank, c.rms_norm_eps)
        self.q_b_proj = nn.Linear(c.q_lora_rank, heads * c.qk_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(c.hidden_size, c.kv_lora_rank + c.qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = RMSNorm(c.kv_lora_rank, c.rms_norm_eps)
        self.kv_b_proj = nn.Linear(c.kv_lora_rank, heads * (c.qk_nope_head_dim + c.v_head_dim), bias=False)
        self.o_proj = nn.Linear(heads * c.v_head_dim, c.hidden_size, bias=False)

    def compress(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cache entry of each token: (RMSNorm'd latent c_kv, the rotated decoupled RoPE key)."""
        c = self.c
        kv = self.kv_a_proj_with_mqa(x)
        latent, k_pe = kv.split([c.kv_lora_rank, c.qk_rope_head_dim], dim=-1)
        wide = torch.promote_types(x.dtype, torch.float32)
        return self.kv_a_layernorm(latent), rotate_interleaved(k_pe.to(wide), cos.to(wide), sin.to(wide)).to(
            x.dtype
        )

    def query(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(q_nope (B, S, H, dn), q_pe (B, S, H, dr)) before the rotation (mla_absorbed rotates it)."""
        c = self.c
        b, s, _ = x.shape
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(
            b, s, c.num_attention_heads, c.qk_head_dim
        )
        q_nope, q_pe = q.split([c.qk_nope_head_dim, c.qk_rope_head_dim], dim=-1)
        return q_nope, q_pe

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        c_kv: torch.Tensor,
        k_pe: torch.Tensor,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Attention of the S new tokens of each row b, the newest S of the first ``lengths[b]`` cache
        entries (which hold them already); cos/sin (B, S, dr/2) at the new tokens' positions."""
        c = self.c
        b, s, _ = x.shape
        q_nope, q_pe = self.query(x)
        out = mla_absorbed(
            {
                "q_nope": q_nope,
                "q_pe": q_pe,
                "cos": cos,
                "sin": sin,
                "c_kv": c_kv,
                "k_pe": k_pe,
                "wkv_b": weight_of(self.kv_b_proj),
                "lengths": lengths,
                "heads": c.num_attention_heads,
                "v_dim": c.v_head_dim,
                "scale": c.softmax_scale,
                "causal": True,
            }
        )
        return self.o_proj(out.reshape(b, s, -1))


class DecoderLayer(nn.Module):
    def __init__(self, c: DeepseekV3Config, index: int) -> None:
        super().__init__()
        self.self_attn = Mla(c)
        self.mlp: nn.Module = Moe(c) if c.is_moe(index) else SwiGlu(c.hidden_size, c.intermediate_size)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None,
        start: int,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One block over S new tokens at positions start..start+S-1; ``cache`` (c_kv, k_pe) buffers of
        at least start + S rows receive their entries (None: attention over these S tokens only). With
        ``slots``, one token per row goes to row b's own position ``slots[b]`` (a slot cache)."""
        b, s, _ = x.shape
        h = self.input_layernorm(x)
        latent, rope_key = self.self_attn.compress(h, cos, sin)
        end = start + s
        if cache is None:
            c_kv, k_pe, lengths = latent, rope_key, torch.full((b,), s, dtype=torch.int64)
        elif slots is not None:
            rows = torch.arange(b, device=x.device)
            cache[0][rows, slots] = latent[:, 0]
            cache[1][rows, slots] = rope_key[:, 0]
            c_kv, k_pe, lengths = cache[0], cache[1], slots.to("cpu", torch.int64) + 1
        else:
            cache[0][:, start:end] = latent
            cache[1][:, start:end] = rope_key
            c_kv, k_pe = cache[0][:, :end], cache[1][:, :end]
            lengths = torch.full((b,), end, dtype=torch.int64)
        x = x + self.self_attn(h, cos, sin, c_kv, k_pe, lengths)
        return x + self.mlp(self.post_attention_layernorm(x))


class SharedHead(nn.Module):
    """The MTP module's own final norm; its output head is the main model's lm_head (shared)."""

    def __init__(self, c: DeepseekV3Config) -> None:
        super().__init__()
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class MtpLayer(DecoderLayer):
    """DeepSeek-V3's MTP module (depth 1): enorm, hnorm, eh_proj, a transformer block, shared_head."""

    def __init__(self, c: DeepseekV3Config, index: int) -> None:
        super().__init__(c, index)
        self.enorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.hnorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * c.hidden_size, c.hidden_size, bias=False)
        self.shared_head = SharedHead(c)


class Body(nn.Module):
    def __init__(self, c: DeepseekV3Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        main = [DecoderLayer(c, i) for i in range(c.num_hidden_layers)]
        mtp = [MtpLayer(c, c.num_hidden_layers + d) for d in range(c.num_nextn_predict_layers)]
        self.layers = nn.ModuleList([*main, *mtp])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class DeepseekV3Decoder(nn.Module):
    """Causal language model. ``forward`` returns the main head's logits for every input position (the
    interface of every decoder here: KV cache, greedy ``generate``); ``forward_with_mtp`` returns the
    main logits (B, S, V) followed along the sequence by the MTP head's (B, S - 1, V): position i of
    the latter predicts token i + 2 from the main model's final hidden state i and token i + 1."""

    optional_keys: tuple[str, ...] = ()

    def __init__(self, config: DeepseekV3Config) -> None:
        super().__init__()
        self.config = config
        self.model = Body(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def rope(
        self, positions: torch.Tensor, batch: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin (batch, S, dr/2) for positions (S,) shared by the rows, or (batch, 1) one per row."""
        c = self.config
        cos, sin = rope_tables(positions.to("cpu"), c.qk_rope_head_dim, c.rope_theta)
        if positions.dim() == 1:
            cos, sin = cos[None].expand(batch, -1, -1), sin[None].expand(batch, -1, -1)
        return cos.to(device), sin.to(device)

    def hidden_states(self, input_ids: torch.Tensor, cache: MlaCache | None = None) -> torch.Tensor:
        """The main model's final hidden states, after model.norm (what lm_head and the MTP module read:
        vLLM's DeepSeekMTP takes the target model's final, normalised hidden states)."""
        c = self.config
        b, s = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        slots = None
        if isinstance(cache, MlaSlotCache):
            if input_ids.shape != (cache.positions.shape[0], 1):
                raise ValueError("a slot cache decodes one token per row")
            slots = cache.positions.clamp(max=cache.max_len - 1)
            cos, sin = self.rope(slots[:, None], b, x.device)
        else:
            start = cache.length if cache is not None else 0
            if start + s > c.max_position_embeddings:
                raise ValueError("the sequence is longer than max_position_embeddings")
            cos, sin = self.rope(torch.arange(start, start + s), b, x.device)
        start = cache.length if cache is not None and slots is None else 0
        for index in range(c.num_hidden_layers):
            layer_cache = None if cache is None else (cache.c_kv[index], cache.k_pe[index])
            x = self.model.layers[index](x, cos, sin, layer_cache, start, slots)
        if isinstance(cache, MlaSlotCache):
            cache.positions += 1
        elif cache is not None:
            cache.length = start + s
        return self.model.norm(x)

    def forward(self, input_ids: torch.Tensor, cache: MlaCache | None = None) -> torch.Tensor:
        return self.lm_head(self.hidden_states(input_ids, cache))

    def mtp_logits(self, input_ids: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The MTP head's logits (B, S - 1, V) from the main model's final hidden states (B, S, H)."""
        c = self.config
        if c.num_nextn_predict_layers == 0:
            return hidden.new_zeros(hidden.shape[0], 0, c.vocab_size)
        mtp: Any = self.model.layers[c.num_hidden_layers]
        embedded = self.model.embed_tokens(input_ids[:, 1:])
        x = mtp_combine(embedded, hidden[:, :-1], mtp.enorm.weight, mtp.hnorm.weight, mtp.eh_proj.weight)
        cos, sin = self.rope(torch.arange(x.shape[1]), x.shape[0], x.device)
        x = mtp(x, cos, sin, None, 0)
        return self.lm_head(mtp.shared_head.norm(x))

    def forward_with_mtp(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_states(input_ids)
        return torch.cat((self.lm_head(hidden), self.mtp_logits(input_ids, hidden)), dim=1)

    def new_cache(self, batch: int, max_len: int) -> MlaCache:
        weight = self.model.embed_tokens.weight
        return MlaCache(self.config, batch, max_len, dtype=weight.dtype, device=weight.device)

    def new_slot_cache(self, batch: int, max_len: int) -> MlaSlotCache:
        weight = self.model.embed_tokens.weight
        return MlaSlotCache(self.config, batch, max_len, dtype=weight.dtype, device=weight.device)

    generate = LlamaDecoder.generate
