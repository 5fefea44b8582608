"""ONNX export of the tagger, checked against PyTorch with onnxruntime (tiny config)."""

import pytest
import torch
import torch.nn.functional as F

from transformers_ramplus.cli.main import main
from transformers_ramplus.inference.fast_paths import enable_fast_inference, is_optimized
from transformers_ramplus.inference.onnx import builtin_label_inputs, export_onnx

from conftest import tiny_model


# the legacy exporter (used here because it exports in seconds) warns that it is deprecated and about traced shapes
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")


def _model():
    model = tiny_model(num_tags=6, descriptions_per_tag=3)
    with torch.no_grad():
        model.classifier.weight.mul_(30.0)  # logits of a few units, so that a mismatch shows
    return model


def _run(session, pixel_values, label_embeds, mask):
    feeds = {"pixel_values": pixel_values.numpy(), "label_embeds": label_embeds.numpy(), "description_mask": mask.numpy()}
    return torch.from_numpy(session.run(["logits"], feeds)[0])


def _check_session(model, path):
    # onnxruntime comes with the `export` extra (installed by `make test`); without it only the checks that run an
    # exported file are skipped, with this reason, and the rest of the suite runs
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e '.[export]'")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    label_embeds, mask = builtin_label_inputs(model)
    # open-set vocabulary with another number of tags and descriptions, padded descriptions masked
    open_embeds = F.normalize(torch.randn(4, 5, model.config.text_embed_dim, generator=generator), dim=-1)
    open_mask = torch.ones(4, 5, dtype=torch.bool)
    open_mask[1, 3:] = False
    for batch in (1, 3):  # dynamic batch (the export used 2)
        pixel_values = torch.randn(batch, 3, 64, 64, generator=generator)
        with torch.no_grad():
            closed = model(pixel_values=pixel_values).logits
            opened = model(pixel_values=pixel_values, label_embeds=open_embeds, description_mask=open_mask).logits
        assert closed.abs().max() > 1.0
        torch.testing.assert_close(_run(session, pixel_values, label_embeds, mask), closed, atol=1e-4, rtol=0)
        torch.testing.assert_close(_run(session, pixel_values, open_embeds, open_mask), opened, atol=1e-4, rtol=0)


def test_onnx_export_matches_pytorch(tmp_path):
    model = _model()
    path = export_onnx(model, tmp_path / "tagger.onnx", dynamo=False)
    assert [p.name for p in tmp_path.iterdir()] == ["tagger.onnx"]  # no temporary file left behind
    _check_session(model, path)


def test_a_fast_model_exports_its_reference_computation(tmp_path):
    """The exporter traces the reference computation of a model with `enable_fast_inference` (its oneDNN kernels and
    folded attention are not traceable ops): the graph gives the fast model's logits, within float rounding."""
    model = enable_fast_inference(_model())
    path = export_onnx(model, tmp_path / "tagger.onnx", dynamo=False)
    assert is_optimized(model)
    _check_session(model, path)


def test_export_onnx_command(tmp_path, capsys):
    model = _model()
    model.save_pretrained(tmp_path / "model")
    code = main(["export-onnx", str(tmp_path / "model"), str(tmp_path / "out.onnx"), "--exporter", "torchscript"])
    assert code == 0
    assert "onnxruntime vs PyTorch" in capsys.readouterr().err
    _check_session(model, tmp_path / "out.onnx")


def test_export_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="tagger.txt"):
        export_onnx(_model(), tmp_path / "tagger.txt")
    with pytest.raises(TypeError, match="RamPlusModel"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "tagger.onnx")


def test_export_onnx_quantize_int8(tmp_path, capsys):
    """`--quantize int8`: onnxruntime's dynamic int8 quantization of the graph, tag decisions close to PyTorch."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e '.[export]'")
    from transformers_ramplus.inference.onnx import quantize_onnx_int8

    model = _model()
    model.save_pretrained(tmp_path / "model")
    output = tmp_path / "int8.onnx"
    code = main(["export-onnx", str(tmp_path / "model"), str(output), "--exporter", "torchscript", "--quantize", "int8"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx", "model"]  # no fp32 or temporary file left
    import onnx

    graph = onnx.load(str(output)).graph
    assert any(node.op_type in ("DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul") for node in graph.node)
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    pixel_values = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    label_embeds, mask = builtin_label_inputs(model)
    logits = _run(session, pixel_values, label_embeds, mask)
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).logits
    spread = (expected.max() - expected.min()).item()
    # int8 moves every logit of this random model by a few hundredths, more on CPUs without VNNI (AMD EPYC, AVX2
    # only: 0.078 of a 0.61 spread, against < 0.06 on the Xeon); the order of the scores is what must survive
    assert (logits - expected).abs().max().item() < 0.2 * spread
    correlation = torch.corrcoef(torch.stack([logits.flatten(), expected.flatten()]))[0, 1].item()
    assert correlation > 0.99, correlation
    with pytest.raises(ValueError, match="no ONNX file"):
        quantize_onnx_int8(tmp_path / "missing.onnx", tmp_path / "out.onnx")
    with pytest.raises(ValueError, match="must end in .onnx"):
        quantize_onnx_int8(output, tmp_path / "out.bin")
    with pytest.raises(SystemExit):
        main(["export-onnx", str(tmp_path / "model"), str(output), "--quantize", "int4"])


@pytest.mark.slow
def test_dynamo_onnx_export_matches_pytorch(tmp_path):
    model = _model()
    path = export_onnx(model, tmp_path / "tagger.onnx")  # the default, torch.export-based exporter
    _check_session(model, path)
