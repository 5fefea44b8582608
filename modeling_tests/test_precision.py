"""`precision="auto"` and the warning for emulated precisions (`inference.precision`), with the CPU's capabilities
faked both ways: an AVX2-only CPU (an AMD EPYC Zen 3), an Intel Xeon with AMX, AVX-512 without BF16 (the probe
decides), flags that cannot be read. No timing: the probe's measurement is replaced."""

import json
import logging
import warnings

import pytest
import torch

from transformers_ramplus.inference import precision as prec


EPYC = frozenset(["fpu", "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "sha_ni"])
XEON_AMX = EPYC | frozenset(["avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"])
AVX512_ONLY = EPYC | frozenset(["avx512f", "avx512bw", "avx512dq"])
CASCADE_LAKE = AVX512_ONLY | {"avx512_vnni"}


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch, tmp_path):
    monkeypatch.setattr(prec, "_WARNED", set())
    monkeypatch.delenv(prec.PRECISION_ENV, raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf_home"))


def fake_cpu(monkeypatch, flags, capability):
    monkeypatch.setattr(prec, "cpu_flags", lambda: flags)
    monkeypatch.setattr(prec, "cpu_capability", lambda: capability)
    monkeypatch.setattr(prec, "cpu_model", lambda: "Fake CPU 9000")


def no_probe():
    raise AssertionError("the flags decide: no probe")


def test_support_from_flags(monkeypatch):
    # int8 without VNNI/AMX: fbgemm's AVX2 kernel where the build has it, else emulated
    monkeypatch.setattr(prec, "fbgemm_int8_available", lambda: True)
    assert prec.cpu_precision_support(EPYC, "AVX2") == {"fp32": "native", "bf16": "emulated", "int8": "native"}
    with monkeypatch.context() as unreadable:  # no /proc/cpuinfo
        unreadable.setattr(prec, "cpu_flags", lambda: None)
        assert prec.cpu_precision_support(None, "AVX2")["int8"] == "native"
    assert prec.cpu_int8_kernel(EPYC, "AVX2") == "fbgemm"
    assert prec.cpu_int8_kernel(XEON_AMX, "AVX512") == "onednn"
    assert prec.cpu_int8_kernel(CASCADE_LAKE, "AVX512") == "onednn"
    monkeypatch.setattr(prec, "fbgemm_int8_available", lambda: False)
    assert prec.cpu_precision_support(EPYC, "AVX2") == {"fp32": "native", "bf16": "emulated", "int8": "emulated"}
    assert prec.cpu_int8_kernel(EPYC, "AVX2") == "onednn"
    assert prec.cpu_precision_support(XEON_AMX, "AVX512") == {"fp32": "native", "bf16": "native", "int8": "native"}
    assert prec.cpu_precision_support(AVX512_ONLY, "AVX512")["bf16"] == "unknown"
    assert prec.cpu_precision_support(CASCADE_LAKE, "AVX512")["int8"] == "unknown"  # int8 rides on bf16 here
    # no /proc/cpuinfo: PyTorch's capability alone says AVX2 (no AVX-512 at all) -> emulated; else unknown
    monkeypatch.setattr(prec, "cpu_flags", lambda: None)
    assert prec.cpu_precision_support(None, "AVX2")["bf16"] == "emulated"
    assert prec.cpu_precision_support(None, "AVX512")["bf16"] == "unknown"
    # the ARM "bf16" feature runs through other kernels: measured
    assert prec.cpu_precision_support(frozenset({"fp", "asimd", "bf16", "i8mm"}), "DEFAULT")["bf16"] == "unknown"


ZEN4 = EPYC | frozenset(["avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"])  # AMD EPYC Zen 4: no AMX


def test_signed_int8_inputs_only_with_amx():
    assert prec.onednn_signed_int8_inputs(XEON_AMX) is True
    for flags in (ZEN4, CASCADE_LAKE, EPYC, frozenset()):
        assert prec.onednn_signed_int8_inputs(flags) is False
    assert prec.cpu_precision_support(ZEN4, "AVX512") == {"fp32": "native", "bf16": "native", "int8": "native"}
    assert prec.cpu_int8_kernel(ZEN4, "AVX512") == "onednn"


def test_auto_picks_fp32_on_an_avx2_cpu_and_bf16_with_amx():
    choice = prec.choose_precision("cpu", flags=EPYC, capability="AVX2", probe=no_probe)
    assert choice.precision == "fp32"
    assert "avx2" in choice.reason and "no bf16/int8 matrix instructions" in choice.reason
    choice = prec.choose_precision("cpu", flags=XEON_AMX, capability="AVX512", probe=no_probe)
    assert choice.precision == "bf16" and "amx_bf16" in choice.reason and "natively" in choice.reason


@pytest.mark.parametrize("speedup, expected", [(2.5, "bf16"), (0.4, "fp32"), (1.1, "fp32")])
def test_the_probe_decides_where_the_flags_do_not(speedup, expected):
    choice = prec.choose_precision("cpu", flags=AVX512_ONLY, capability="AVX512", probe=lambda: speedup)
    assert choice.precision == expected and f"{speedup:.2f}x" in choice.reason


def test_probe_is_cached_per_machine(monkeypatch):
    calls = []
    monkeypatch.setattr(prec, "measure_bf16_speedup", lambda: calls.append(1) or 1.75)
    fake_cpu(monkeypatch, AVX512_ONLY, "AVX512")
    assert prec.probed_bf16_speedup() == 1.75 and len(calls) == 1
    cache = json.loads(prec.probe_cache_path().read_text())
    key = prec.probe_key()
    assert "Fake CPU 9000" in key and torch.__version__ in key and cache[key]["bf16_speedup"] == 1.75
    assert prec.probed_bf16_speedup() == 1.75 and len(calls) == 1  # from the cache
    assert prec.choose_precision("cpu").precision == "bf16" and len(calls) == 1
    # another CPU model (or torch version) is another key: measured again
    monkeypatch.setattr(prec, "cpu_model", lambda: "Other CPU")
    prec.probed_bf16_speedup()
    assert len(calls) == 2 and len(json.loads(prec.probe_cache_path().read_text())) == 2


def test_a_corrupt_or_unwritable_probe_cache_is_measured_again(monkeypatch, tmp_path):
    monkeypatch.setattr(prec, "measure_bf16_speedup", lambda: 0.5)
    fake_cpu(monkeypatch, AVX512_ONLY, "AVX512")
    path = prec.probe_cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert prec.probed_bf16_speedup() == 0.5
    assert json.loads(path.read_text())[prec.probe_key()]["bf16_speedup"] == 0.5
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the cache folder would be")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(blocker))
    assert prec.probed_bf16_speedup() == 0.5  # measured, not cached, no error


def test_gpu_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert prec.choose_precision("cuda:0", probe=no_probe).precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert prec.choose_precision(torch.device("cuda", 0), probe=no_probe).precision == "fp32"
    assert prec.choose_precision("mps", probe=no_probe).precision == "fp32"


def test_explicit_emulated_precision_warns_once(monkeypatch):
    fake_cpu(monkeypatch, EPYC, "AVX2")
    monkeypatch.setattr(prec, "fbgemm_int8_available", lambda: False)  # int8 emulated too (else fbgemm runs it)
    with pytest.warns(UserWarning, match=r'precision="bf16" runs emulated on Fake CPU 9000.*about 5x slower than "fp32"'):
        assert prec.resolve_precision("bf16", "cpu") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prec.resolve_precision("bf16", "cpu") == "bf16"  # once per process
        assert prec.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.warns(UserWarning, match=r'precision="int8".*more than 45x.*slower.*Use precision="fp32".*export-onnx --quantize int8'):
        prec.resolve_precision("int8", "cpu")


def test_no_warning_where_the_cpu_runs_it(monkeypatch):
    fake_cpu(monkeypatch, XEON_AMX, "AVX512")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prec.resolve_precision("int8", "cpu") == "int8"
        assert prec.resolve_precision("bf16", "cpu") == "bf16"
    fake_cpu(monkeypatch, EPYC, "AVX2")
    monkeypatch.setattr(prec, "fbgemm_int8_available", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prec.resolve_precision("int8", "cpu") == "int8"  # fbgemm's AVX2 kernel runs it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prec.resolve_precision("bf16", "cuda:0") == "bf16"  # a GPU: not the CPU's business


def test_resolve_auto_logs_one_line(monkeypatch, caplog):
    fake_cpu(monkeypatch, EPYC, "AVX2")
    with caplog.at_level(logging.INFO, logger=prec.__name__):
        assert prec.resolve_precision("auto", "cpu", torch.float32) == "fp32"
        assert prec.resolve_precision(None, "cpu") == "fp32"
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2 and all(line.startswith("precision auto: fp32") and "Fake CPU 9000" in line for line in lines)
    assert prec.resolve_precision("auto", "cpu", torch.float16) is None  # fp16 models keep the reference path
    with pytest.warns(UserWarning, match="loaded in bfloat16"):
        assert prec.resolve_precision("auto", "cpu", torch.bfloat16) == "bf16"
    with pytest.raises(ValueError, match="'auto', 'fp32', 'bf16', 'int8'"):
        prec.resolve_precision("fp16", "cpu")


def test_pipeline_default_follows_the_cpu(monkeypatch, converted_tiny):
    from transformers import pipeline

    fake_cpu(monkeypatch, XEON_AMX, "AVX512")
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny))
    assert tagger.model.fast_inference.precision == "bf16" and prec.applied_precision(tagger.model) == "bf16"
    fake_cpu(monkeypatch, EPYC, "AVX2")
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny))
    assert tagger.model.fast_inference.precision == "fp32" and tagger.model.dtype == torch.float32
    with pytest.warns(UserWarning, match='precision="bf16" runs emulated'):
        tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), precision="bf16")
    assert tagger.model.fast_inference.precision == "bf16"
    plain = pipeline("zero-shot-image-tagging", model=str(converted_tiny), optimize=False)  # "auto" needs no fast path
    assert prec.applied_precision(plain.model) is None


def test_options_accept_auto():
    from transformers_ramplus.cli.main import build_parser
    from transformers_ramplus.inference.tagging import check_options

    check_options(precision="auto")
    with pytest.raises(ValueError, match="'auto', 'fp32', 'bf16', 'int8'"):
        check_options(precision="fp16")
    args = build_parser().parse_args(["tag", "x.jpg"])
    assert args.precision == "auto"


def test_environment_fixes_what_auto_means(monkeypatch):
    fake_cpu(monkeypatch, XEON_AMX, "AVX512")
    monkeypatch.setenv("RAMPLUS_PRECISION", "fp32")
    assert prec.resolve_precision("auto", "cpu", torch.float32) == "fp32"
    assert prec.resolve_precision("bf16", "cpu") == "bf16"  # an explicit precision wins
    monkeypatch.setenv("RAMPLUS_PRECISION", "fp16")
    with pytest.raises(ValueError, match="RAMPLUS_PRECISION"):
        prec.resolve_precision("auto", "cpu")


def test_outputs_from_before_auto_resume_when_the_default_stays_fp32():
    """Earlier versions recorded `"precision": null` for the default (fp32) path: resuming such an output with the
    fp32 that "auto" picks is the same run; with bf16 it is not."""
    from transformers_ramplus.io.resume import refuse_changed_settings

    refuse_changed_settings("out.jsonl", {"precision": None, "threshold": 0.5}, {"precision": "fp32", "threshold": 0.5})
    with pytest.raises(ValueError, match="--precision: None before, 'bf16' now"):
        refuse_changed_settings("out.jsonl", {"precision": None}, {"precision": "bf16"})
