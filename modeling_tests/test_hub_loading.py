"""Loading by Hub id (`from_pretrained("owner/name")`) against a local Hub on 127.0.0.1."""

import subprocess
import sys
import textwrap

import torch

from local_hub import LocalHub, hub_env


def test_model_and_processor_load_by_hub_id(tmp_path, converted_tiny, reference_outputs):
    torch.save(reference_outputs["pixel_values"], tmp_path / "pixels.pt")
    torch.save(reference_outputs["logits"], tmp_path / "logits.pt")
    script = textwrap.dedent(
        f"""
        import torch
        import transformers_ramplus
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained("someone/ram-plus-tiny").eval()
        processor = AutoProcessor.from_pretrained("someone/ram-plus-tiny")
        assert processor.tokenizer is None and len(processor.tag_names) == 37
        with torch.no_grad():
            logits = model(pixel_values=torch.load({str(tmp_path / 'pixels.pt')!r})).logits
        torch.testing.assert_close(logits, torch.load({str(tmp_path / 'logits.pt')!r}), atol=1e-4, rtol=0)
        try:
            AutoModel.from_pretrained("someone/does-not-exist")
        except OSError as error:
            print("missing-repo-error-ok")
        print("hub-ok")
        """
    )
    with LocalHub() as hub:
        hub.add_repo("someone/ram-plus-tiny", converted_tiny)
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=hub_env(hub, tmp_path / "hf")
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hub-ok" in result.stdout and "missing-repo-error-ok" in result.stdout
    assert any("/someone/ram-plus-tiny/resolve/" in r and r.endswith("model.safetensors") for r in hub.requests)
