"""optfusion_tf/training/precision.py: when --deep_dtype=mixed_bfloat16 warns of emulation."""

import pytest
import tensorflow as tf

from optfusion_tf.training.precision import bfloat16_matmul_is_native, cpu_flags, warn_unless_native

FLAGS_LINE = "flags\t\t: fpu vme avx2 avx512f {extra} sse4_2\n"


def cpuinfo(tmp_path, extra):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\n" + FLAGS_LINE.format(extra=extra) + "bugs\t\t: \n")
    return str(path)


def gpus(monkeypatch, *capabilities):
    """This process sees one GPU per capability (None: a GPU that reports none)."""
    devices = [f"/physical_device:GPU:{k}" for k in range(len(capabilities))]
    details = dict(zip(devices, capabilities))
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: devices if kind == "GPU" else [])
    monkeypatch.setattr(
        tf.config.experimental, "get_device_details",
        lambda device: {} if details[device] is None else {"compute_capability": details[device]},
    )


def test_cpu_flags_reads_the_flags_line_and_nothing_without_the_file(tmp_path):
    assert cpu_flags(cpuinfo(tmp_path, "avx512_bf16")) == {
        "fpu", "vme", "avx2", "avx512f", "avx512_bf16", "sse4_2"
    }
    assert cpu_flags(str(tmp_path / "absent")) == set()


def test_without_gpus_the_cpu_flags_decide_and_only_bfloat16_warns(tmp_path, monkeypatch, caplog):
    gpus(monkeypatch)
    caplog.set_level("WARNING")
    assert not warn_unless_native("float32", cpuinfo(tmp_path, ""))
    assert not warn_unless_native("mixed_bfloat16", cpuinfo(tmp_path, "avx512_bf16"))
    assert not warn_unless_native("mixed_bfloat16", cpuinfo(tmp_path, "amx_bf16 amx_tile"))
    assert not caplog.records
    assert warn_unless_native("mixed_bfloat16", cpuinfo(tmp_path, "avx512_vnni"))
    assert "--deep_dtype=mixed_bfloat16: this machine shows no bfloat16 matmul units" in caplog.text


@pytest.mark.parametrize("capabilities, native", [
    (((8, 0),), True), (((9, 0), (8, 6)), True), ((None,), True),
    (((7, 5),), False), (((8, 0), (7, 0)), False),
])
def test_with_gpus_the_gpus_decide(tmp_path, monkeypatch, capabilities, native):
    gpus(monkeypatch, *capabilities)
    # The CPU's flags do not matter: the model runs on the GPUs.
    for extra in ("avx512_bf16", ""):
        assert bfloat16_matmul_is_native(cpuinfo(tmp_path, extra)) is native
