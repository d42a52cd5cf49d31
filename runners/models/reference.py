"""Float64 references written separately from the device modules.

The BERT reference is plain NumPy from the tensors by name, so an error in the torch module
(a wrong mask, a swapped projection) cannot hide by being repeated in the reference; the
DeepSeek-V3 reference is float64 torch from the tensors by name through the conformance catalog's
reference forms (decompressed MLA, per-expert MoE), which the module does not use. The
decoder and the CNN are compared against their own module cast to float64 on the CPU,
which checks the device and its low-precision kernels, not the architecture code.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from runners.catalog.latent_attention import mla_naive, rope_tables, rotate_interleaved
from runners.catalog.moe import boundary_gaps, moe_experts_reference, route, swiglu_expert
from runners.catalog.multi_token_prediction import mtp_combine_reference
from runners.models.bert import BertConfig
from runners.models.deepseek import DeepseekV3Config


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


def deepseek_reference_logits(
    state: dict[str, torch.Tensor], config: DeepseekV3Config, input_ids: torch.Tensor
) -> torch.Tensor:
    """The DeepSeek-V3 decoder in float64 from the tensors by name: main logits (B, S, V) followed along
    the sequence by the MTP head's (B, S - 1, V), as ``DeepseekV3Decoder.forward_with_mtp``.

    Written with the catalog's reference forms, not the device module's: attention decompresses the
    keys and values from the latent (``mla_naive``) where the module absorbs W_uk / W_uv; the experts
    run per expert over the tokens that chose them (``moe_experts_reference``) where the module permutes
    and groups; routing is ``route`` in float64 and the MTP combination ``mtp_combine_reference``."""
    return DeepseekReference(state, config).logits(input_ids)


class DeepseekReference:
    """The float64 DeepSeek-V3 reference of ``deepseek_reference_logits``, with its tensors converted
    once, whole-sequence (``logits``) or one token at a time over a per-layer latent cache (``step``,
    which also reports each MoE layer's routing boundary gap: what the model suite's prompt draw
    needs, runners/model_suite/workloads.py)."""

    def __init__(self, state: dict[str, torch.Tensor], config: DeepseekV3Config) -> None:
        self.w = {name: t.detach().to("cpu", torch.float64) for name, t in state.items()}
        self.c = config

    def norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.c.rms_norm_eps) * self.w[name]

    def swiglu(self, p: str) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.w
        return torch.cat((w[p + "gate_proj.weight"], w[p + "up_proj.weight"])), w[p + "down_proj.weight"]

    def block(
        self,
        x: torch.Tensor,
        i: int,
        cache: dict[str, torch.Tensor] | None = None,
        gaps: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Block i over the S tokens of x, the newest S after ``cache`` (its layer's prefix entries
        "c_kv" (B, P, r) and "k_pe" (B, P, dr), P = 0 when None). The new tokens' entries are left in
        ``cache["new_c_kv"]`` / ``cache["new_k_pe"]``; with ``gaps``, a MoE layer appends each token's
        routing boundary gap (B, S) (catalog ``boundary_gaps``: the float64 decision's margin)."""
        w, c = self.w, self.c
        p = f"model.layers.{i}."
        b, s, _ = x.shape
        start = 0 if cache is None else cache["c_kv"].shape[1]
        h = self.norm(x, p + "input_layernorm.weight")
        q = self.norm(h @ w[p + "self_attn.q_a_proj.weight"].t(), p + "self_attn.q_a_layernorm.weight")
        q = (q @ w[p + "self_attn.q_b_proj.weight"].t()).view(b, s, c.num_attention_heads, c.qk_head_dim)
        kv = h @ w[p + "self_attn.kv_a_proj_with_mqa.weight"].t()
        cos, sin = rope_tables(torch.arange(start, start + s), c.qk_rope_head_dim, c.rope_theta)
        cos, sin = cos.double()[None].expand(b, -1, -1), sin.double()[None].expand(b, -1, -1)
        c_kv = self.norm(kv[..., : c.kv_lora_rank], p + "self_attn.kv_a_layernorm.weight")
        k_pe = rotate_interleaved(kv[..., c.kv_lora_rank :], cos, sin)
        if cache is not None:
            cache["new_c_kv"], cache["new_k_pe"] = c_kv, k_pe
            c_kv = torch.cat((cache["c_kv"], c_kv), dim=1)
            k_pe = torch.cat((cache["k_pe"], k_pe), dim=1)
        out = mla_naive(
            {
                "q_nope": q[..., : c.qk_nope_head_dim],
                "q_pe": q[..., c.qk_nope_head_dim :],
                "cos": cos,
                "sin": sin,
                "c_kv": c_kv,
                "k_pe": k_pe,
                "wkv_b": w[p + "self_attn.kv_b_proj.weight"],
                "lengths": torch.full((b,), start + s, dtype=torch.int64),
                "heads": c.num_attention_heads,
                "v_dim": c.v_head_dim,
                "scale": c.softmax_scale,
                "causal": True,
            }
        )
        x = x + out.reshape(b, s, -1) @ w[p + "self_attn.o_proj.weight"].t()
        h = self.norm(x, p + "post_attention_layernorm.weight").reshape(b * s, -1)
        if not c.is_moe(i):
            return x + swiglu_expert(h, *self.swiglu(p + "mlp.")).view(b, s, -1)
        logits, bias = h @ w[p + "mlp.gate.weight"].t(), w[p + "mlp.gate.e_score_correction_bias"]
        k, groups, topk_groups = c.num_experts_per_tok, c.n_group, c.topk_group
        ids, weights = route(
            logits,
            bias,
            score=c.scoring_func,
            k=k,
            groups=groups,
            topk_groups=topk_groups,
            normalize=c.norm_topk_prob,
            scale=c.routed_scaling_factor,
        )
        if gaps is not None:
            scores = logits.softmax(dim=-1) if c.scoring_func == "softmax" else logits.sigmoid()
            gaps.append(boundary_gaps(scores + bias, k, groups, topk_groups, True).view(b, s))
        experts = [self.swiglu(f"{p}mlp.experts.{e}.") for e in range(c.n_routed_experts)]
        shared = self.swiglu(p + "mlp.shared_experts.")
        y = moe_experts_reference(h, ids, weights, [e[0] for e in experts], [e[1] for e in experts], *shared)
        return x + y.view(b, s, -1)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        w, c = self.w, self.c
        ids = input_ids.to("cpu").long()
        x = w["model.embed_tokens.weight"][ids]
        for i in range(c.num_hidden_layers):
            x = self.block(x, i)
        hidden = self.norm(x, "model.norm.weight")
        logits = hidden @ w["lm_head.weight"].t()
        if c.num_nextn_predict_layers == 0:
            return torch.cat((logits, logits.new_zeros(ids.shape[0], 0, c.vocab_size)), dim=1)
        x = self.mtp_input(ids[:, 1:], hidden[:, :-1])
        x = self.block(x, c.num_hidden_layers)
        m = f"model.layers.{c.num_hidden_layers}."
        mtp = self.norm(x, m + "shared_head.norm.weight") @ w["lm_head.weight"].t()
        return torch.cat((logits, mtp), dim=1)

    def main_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The main head's logits (B, S, V) alone (no MTP module): what a served token is judged on."""
        w, c = self.w, self.c
        x = w["model.embed_tokens.weight"][input_ids.to("cpu").long()]
        for i in range(c.num_hidden_layers):
            x = self.block(x, i)
        return self.norm(x, "model.norm.weight") @ w["lm_head.weight"].t()

    def mtp_input(self, next_ids: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        w = self.w
        m = f"model.layers.{self.c.num_hidden_layers}."
        return mtp_combine_reference(
            w["model.embed_tokens.weight"][next_ids],
            hidden,
            w[m + "enorm.weight"],
            w[m + "hnorm.weight"],
            w[m + "eh_proj.weight"],
        )

    def step(
        self, token: torch.Tensor, caches: list[dict[str, torch.Tensor]], hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict[str, torch.Tensor]]]:
        """One new token per row (B,) after the prefix held in ``caches`` (one per block, the MTP
        module's last; ``hidden`` the main model's final hidden state (B, H) of the previous token, None
        at position 0). Returns (this token's final hidden state (B, H), the routing boundary gap (B,)
        smallest over the main MoE layers at this position and the MTP module's at the previous one,
        inf where none routes, the top-1 logit gap (B,) (``top1_logit_gap``) smaller of the main head's
        logits at this position and the MTP head's at the previous one, and the blocks' new entries
        (each "c_kv", "k_pe" (B, 1, .)))."""
        w, c = self.w, self.c
        x = w["model.embed_tokens.weight"][token.long()][:, None]
        gaps: list[torch.Tensor] = []
        news = []
        for i in range(c.num_hidden_layers):
            cache = dict(caches[i])
            x = self.block(x, i, cache, gaps)
            news.append({"c_kv": cache["new_c_kv"], "k_pe": cache["new_k_pe"]})
        final = self.norm(x, "model.norm.weight")[:, 0]
        logit_gap = top1_logit_gap(final @ w["lm_head.weight"].t())
        if c.num_nextn_predict_layers and hidden is not None:
            cache = dict(caches[c.num_hidden_layers])
            m = f"model.layers.{c.num_hidden_layers}."
            x = self.block(
                self.mtp_input(token.long()[:, None], hidden[:, None]), c.num_hidden_layers, cache, gaps
            )
            mtp = self.norm(x[:, 0], m + "shared_head.norm.weight") @ w["lm_head.weight"].t()
            logit_gap = torch.minimum(logit_gap, top1_logit_gap(mtp))
            news.append({"c_kv": cache["new_c_kv"], "k_pe": cache["new_k_pe"]})
        gap = torch.full((token.shape[0],), math.inf, dtype=torch.float64)
        for g in gaps:
            gap = torch.minimum(gap, g[:, 0])
        return final, gap, logit_gap, news


class DeepseekReferenceDecoder:
    """The float64 reference as the serving suite and the platform's reveal call a decoder's float64
    model (runners/served_outputs.py): ``model(input_ids)`` the main head's logits (B, S, V) and
    ``generate(prompt, n)`` the greedy continuation (B, n), both through ``DeepseekReference`` (the
    catalog's reference forms, from the tensors by name), not the device module cast to float64, so a
    fault in the module's code (a dropped shared expert, a wrong absorbed attention) cannot hide by
    being repeated in the reference. Each step recomputes the whole sequence (no cache: the reference
    shares no cache code with the module either)."""

    def __init__(self, state: dict[str, torch.Tensor], config: DeepseekV3Config) -> None:
        self.reference = DeepseekReference(state, config)

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.reference.main_logits(input_ids)

    def routing_gaps(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Per position of ``input_ids`` (B, S) the float64 routing boundary gap (catalog
        ``boundary_gaps``), smallest over the main model's MoE layers (B, S); inf without MoE layers."""
        w, c = self.reference.w, self.reference.c
        ids = input_ids.to("cpu").long()
        gaps: list[torch.Tensor] = []
        x = w["model.embed_tokens.weight"][ids]
        for i in range(c.num_hidden_layers):
            x = self.reference.block(x, i, None, gaps)
        if not gaps:
            return torch.full(ids.shape, math.inf, dtype=torch.float64)
        return torch.stack(gaps).amin(0)

    def generate(self, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
        ids = prompt.to("cpu").long()
        out = []
        for _ in range(int(new_tokens)):
            token = self.reference.main_logits(ids)[:, -1].argmax(-1, keepdim=True)
            out.append(token)
            ids = torch.cat((ids, token), dim=1)
        return torch.cat(out, dim=1) if out else ids.new_zeros(ids.shape[0], 0)


def top1_logit_gap(logits: torch.Tensor) -> torch.Tensor:
    """Per row of ``logits`` (..., V): the largest logit's lead over the second, relative to the row's
    largest |logit| (the scale of the serving suite's tie rule, runners/served_outputs.py); 0 where the
    row is all zeros."""
    top = logits.topk(2, dim=-1).values
    scale = logits.abs().amax(-1)
    return torch.where(scale > 0, (top[..., 0] - top[..., 1]) / scale.clamp_min(1e-300), 0.0)
