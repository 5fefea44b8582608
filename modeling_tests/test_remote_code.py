"""A saved model loads with trust_remote_code=True in a process that cannot import transformers_ramplus."""

import textwrap

import torch

from conftest import run_without_package, tiny_model


def test_remote_code_loads_without_the_package(tmp_path):
    model = tiny_model()
    model.config.register_for_auto_class()
    model.register_for_auto_class("AutoModel")
    model.save_pretrained(tmp_path / "remote")
    assert (tmp_path / "remote" / "modeling_ram_plus.py").is_file()
    assert (tmp_path / "remote" / "configuration_ram_plus.py").is_file()
    pixel_values = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.save(pixel_values, tmp_path / "pixels.pt")
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).logits
    torch.save(expected, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["transformers_ramplus"] = None  # importing the package now fails
        import torch
        from transformers import AutoModel
        try:
            import transformers_ramplus
            raise SystemExit("the package is importable")
        except ImportError:
            pass
        model = AutoModel.from_pretrained({str(tmp_path / 'remote')!r}, trust_remote_code=True).eval()
        assert type(model).__name__ == "RamPlusModel"
        assert "transformers_ramplus" not in type(model).__module__
        with torch.no_grad():
            logits = model(pixel_values=torch.load({str(tmp_path / 'pixels.pt')!r})).logits
        torch.testing.assert_close(logits, torch.load({str(tmp_path / 'expected.pt')!r}))
        print("remote-ok")
        """
    )
    result = run_without_package(script, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remote-ok" in result.stdout
