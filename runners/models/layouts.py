"""What a weights file of each architecture must hold, as documentation: pure data, no torch.

Each entry is (name pattern, shape) with symbols from the config: ``{i}``, ``{s}``, ``{b}``, ``{e}``
are layer, stage, block and expert indices, ``{a|b}`` alternatives. The platform's API schema shows these
tables; the check itself compares against the module the config builds
(runners/models/loading.py ``expected_tensors``), and a test keeps the two in agreement.
"""

from __future__ import annotations

from typing import NamedTuple


class Layout(NamedTuple):
    symbols: str
    tensors: tuple[tuple[str, str], ...]


_BERT_LAYER = "encoder.layer.{i}"
_LLAMA_LAYER = "model.layers.{i}"
_DS_ATTN = "model.layers.{i}.self_attn"
_DS_MLP = "model.layers.{i}.mlp"
_BN = "{weight|bias|running_mean|running_var}"

LAYOUTS: dict[str, Layout] = {
    "bert-encoder": Layout(
        "V=vocab_size, H=hidden_size, I=intermediate_size, P=max_position_embeddings, "
        "T=type_vocab_size, i in 0..num_hidden_layers-1; optional: pooler.dense.{weight|bias}, "
        "embeddings.position_ids",
        (
            ("embeddings.word_embeddings.weight", "[V, H]"),
            ("embeddings.position_embeddings.weight", "[P, H]"),
            ("embeddings.token_type_embeddings.weight", "[T, H]"),
            ("embeddings.LayerNorm.{weight|bias}", "[H]"),
            (f"{_BERT_LAYER}.attention.self.{{query|key|value}}.weight", "[H, H]"),
            (f"{_BERT_LAYER}.attention.self.{{query|key|value}}.bias", "[H]"),
            (f"{_BERT_LAYER}.attention.output.dense.weight", "[H, H]"),
            (f"{_BERT_LAYER}.attention.output.dense.bias", "[H]"),
            (f"{_BERT_LAYER}.attention.output.LayerNorm.{{weight|bias}}", "[H]"),
            (f"{_BERT_LAYER}.intermediate.dense.weight", "[I, H]"),
            (f"{_BERT_LAYER}.intermediate.dense.bias", "[I]"),
            (f"{_BERT_LAYER}.output.dense.weight", "[H, I]"),
            (f"{_BERT_LAYER}.output.dense.bias", "[H]"),
            (f"{_BERT_LAYER}.output.LayerNorm.{{weight|bias}}", "[H]"),
        ),
    ),
    "llama-decoder": Layout(
        "V=vocab_size, H=hidden_size, I=intermediate_size, A=num_attention_heads, "
        "K=num_key_value_heads, D=H/A, i in 0..num_hidden_layers-1; lm_head.weight is absent "
        "when tie_word_embeddings is true",
        (
            ("model.embed_tokens.weight", "[V, H]"),
            (f"{_LLAMA_LAYER}.self_attn.q_proj.weight", "[A*D, H]"),
            (f"{_LLAMA_LAYER}.self_attn.{{k_proj|v_proj}}.weight", "[K*D, H]"),
            (f"{_LLAMA_LAYER}.self_attn.o_proj.weight", "[H, A*D]"),
            (f"{_LLAMA_LAYER}.mlp.{{gate_proj|up_proj}}.weight", "[I, H]"),
            (f"{_LLAMA_LAYER}.mlp.down_proj.weight", "[H, I]"),
            (f"{_LLAMA_LAYER}.{{input_layernorm|post_attention_layernorm}}.weight", "[H]"),
            ("model.norm.weight", "[H]"),
            ("lm_head.weight", "[V, H]"),
        ),
    ),
    "deepseek-v3": Layout(
        "V=vocab_size, H=hidden_size, I=intermediate_size, M=moe_intermediate_size, E=n_routed_experts, "
        "S=n_shared_experts, A=num_attention_heads, Q=q_lora_rank, R=kv_lora_rank, N=qk_nope_head_dim, "
        "P=qk_rope_head_dim, D=v_head_dim, L=num_hidden_layers; i in 0..L-1, and i = L for the MTP "
        "module when num_nextn_predict_layers is 1; e in 0..E-1; the dense mlp.{gate_proj|up_proj|"
        "down_proj} in layers i < first_k_dense_replace, the MoE tensors (mlp.gate, mlp.experts, "
        "mlp.shared_experts) in the others and in the MTP module; enorm, hnorm, eh_proj and "
        "shared_head.norm in the MTP module only, which shares model.embed_tokens and lm_head",
        (
            ("model.embed_tokens.weight", "[V, H]"),
            (f"{_DS_ATTN}.q_a_proj.weight", "[Q, H]"),
            (f"{_DS_ATTN}.q_a_layernorm.weight", "[Q]"),
            (f"{_DS_ATTN}.q_b_proj.weight", "[A*(N+P), Q]"),
            (f"{_DS_ATTN}.kv_a_proj_with_mqa.weight", "[R+P, H]"),
            (f"{_DS_ATTN}.kv_a_layernorm.weight", "[R]"),
            (f"{_DS_ATTN}.kv_b_proj.weight", "[A*(N+D), R]"),
            (f"{_DS_ATTN}.o_proj.weight", "[H, A*D]"),
            ("model.layers.{i}.{input_layernorm|post_attention_layernorm}.weight", "[H]"),
            (f"{_DS_MLP}.{{gate_proj|up_proj}}.weight", "[I, H]"),
            (f"{_DS_MLP}.down_proj.weight", "[H, I]"),
            (f"{_DS_MLP}.gate.weight", "[E, H]"),
            (f"{_DS_MLP}.gate.e_score_correction_bias", "[E]"),
            (f"{_DS_MLP}.experts.{{e}}.{{gate_proj|up_proj}}.weight", "[M, H]"),
            (f"{_DS_MLP}.experts.{{e}}.down_proj.weight", "[H, M]"),
            (f"{_DS_MLP}.shared_experts.{{gate_proj|up_proj}}.weight", "[S*M, H]"),
            (f"{_DS_MLP}.shared_experts.down_proj.weight", "[H, S*M]"),
            ("model.layers.{i}.{enorm|hnorm|shared_head.norm}.weight", "[H]"),
            ("model.layers.{i}.eh_proj.weight", "[H, 2*H]"),
            ("model.norm.weight", "[H]"),
            ("lm_head.weight", "[V, H]"),
        ),
    ),
    "resnet-cnn": Layout(
        "C=in_channels, W[s]=widths[s], N=num_classes, s in 0..len(widths)-1, b in 0..blocks[s]-1, "
        "IN=W[s-1] for the first block of a stage s>0, else W[s]; downsample only on the first "
        "block of a stage s>0",
        (
            ("conv1.weight", "[W[0], C, 3, 3]"),
            (f"bn1.{_BN}", "[W[0]]"),
            ("bn1.num_batches_tracked", "[]"),
            ("layers.{s}.{b}.conv1.weight", "[W[s], IN, 3, 3]"),
            ("layers.{s}.{b}.conv2.weight", "[W[s], W[s], 3, 3]"),
            (f"layers.{{s}}.{{b}}.{{bn1|bn2}}.{_BN}", "[W[s]]"),
            ("layers.{s}.{b}.{bn1|bn2}.num_batches_tracked", "[]"),
            ("layers.{s}.0.downsample.0.weight", "[W[s], W[s-1], 1, 1]"),
            (f"layers.{{s}}.0.downsample.1.{_BN}", "[W[s]]"),
            ("layers.{s}.0.downsample.1.num_batches_tracked", "[]"),
            ("fc.weight", "[N, W[-1]]"),
            ("fc.bias", "[N]"),
        ),
    ),
}


def layout_text(name: str) -> str:
    """The documented tensor layout of one architecture, one tensor pattern a line."""
    layout = LAYOUTS[name]
    rows = "\n".join(f"  {pattern}: {shape}" for pattern, shape in layout.tensors)
    return f"{name} ({layout.symbols}):\n{rows}"
