"""Precision names: the one table between the registry's declared-peak keys (fp32, bf16, ...,
apps/registry/models.py PEAK_FIELDS) and the dtype names runners measure in (float32, bfloat16, ...).

Here, below the Django apps, so that the runner (claims), the judge, the certificate and procurement
read the same table."""

from __future__ import annotations

# The dtype each declared peak is measured in (fp8 peaks are quoted for e4m3).
DTYPE_OF_PEAK_KEY: dict[str, str] = {
    "fp32": "float32",
    "tf32": "tf32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "fp8": "float8_e4m3fn",
    "int8": "int8",
}
# The declared-peak key of each dtype name (both fp8 formats count against the fp8 peak).
PEAK_KEY_OF_DTYPE: dict[str, str] = {
    **{dtype: key for key, dtype in DTYPE_OF_PEAK_KEY.items()},
    "tfloat32": "tf32",
    "float8_e5m2": "fp8",
}


def peak_key(dtype: str) -> str:
    """The declared-peak key for a dtype name; a name that is already a key (or unknown) stays."""
    return PEAK_KEY_OF_DTYPE.get(dtype, dtype)
