"""Whether this machine multiplies bfloat16 matrices natively (`--deep_dtype=mixed_bfloat16`).

bfloat16 pays where the hardware has bfloat16 units: x86 CPUs with AVX512_BF16 or AMX (oneDNN
uses them; a [4096, 624] x [624, 624] matmul ran at 1.9x the float32 rate on this project's
2-core AMD EPYC) and NVIDIA GPUs of compute capability 8.0 and above (not measured here: no
GPU). Elsewhere TensorFlow emulates it, slower than float32.
"""

from __future__ import annotations

from absl import logging

# /proc/cpuinfo flags of the x86 instructions that multiply bfloat16 (what oneDNN dispatches on).
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags from `cpuinfo` (Linux); empty where the file is not there."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def bfloat16_matmul_is_native(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the devices the model runs on multiply bfloat16 natively: with GPUs (where the
    model runs then), every GPU of compute capability >= 8.0 (a GPU that reports none, e.g.
    ROCm's, counts as native: no evidence against it); without, a CPU flag of
    BFLOAT16_CPU_FLAGS."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability")
                        for gpu in gpus]
        return all(c is None or tuple(c) >= (8, 0) for c in capabilities)
    return bool(cpu_flags(cpuinfo) & set(BFLOAT16_CPU_FLAGS))


def warn_unless_native(deep_dtype: str, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Logs a warning when `deep_dtype` computes in bfloat16 on a machine without bfloat16
    units; returns whether it warned."""
    if deep_dtype == "float32" or bfloat16_matmul_is_native(cpuinfo):
        return False
    logging.warning(
        "--deep_dtype=%s: this machine shows no bfloat16 matmul units (no GPU of compute "
        "capability >= 8.0, none of the CPU flags %s), so TensorFlow emulates bfloat16 there, "
        "slower than float32; --deep_dtype=float32 is the faster choice here.",
        deep_dtype, "/".join(BFLOAT16_CPU_FLAGS),
    )
    return True
