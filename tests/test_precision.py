"""optfusion_tf/training/precision.py: when --deep_dtype=mixed_bfloat16 warns of emulation."""

from optfusion_tf.training.precision import cpu_flags, warn_unless_native

FLAGS_LINE = "flags\t\t: fpu vme avx2 avx512f {extra} sse4_2\n"


def cpuinfo(tmp_path, extra):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\n" + FLAGS_LINE.format(extra=extra) + "bugs\t\t: \n")
    return str(path)


def test_cpu_flags_reads_the_flags_line_and_nothing_without_the_file(tmp_path):
    assert cpu_flags(cpuinfo(tmp_path, "avx512_bf16")) == {
        "fpu", "vme", "avx2", "avx512f", "avx512_bf16", "sse4_2"
    }
    assert cpu_flags(str(tmp_path / "absent")) == set()


def test_bfloat16_warns_without_bfloat16_units_only(tmp_path, caplog):
    caplog.set_level("WARNING")
    assert not warn_unless_native("float32", cpuinfo(tmp_path, ""))
    assert not warn_unless_native("mixed_bfloat16", cpuinfo(tmp_path, "avx512_bf16"))
    assert not warn_unless_native("mixed_bfloat16", cpuinfo(tmp_path, "amx_bf16 amx_tile"))
    assert not caplog.records
    assert warn_unless_native("mixed_bfloat16", cpuinfo(tmp_path, "avx512_vnni"))
    assert "--deep_dtype=mixed_bfloat16: this machine shows no bfloat16 matmul units" in caplog.text
