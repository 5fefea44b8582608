"""`torch.compile` works on the model (tiny config): it compiles and gives the eager logits.

The default-suite check captures the tagging graph with dynamo as ONE graph (`fullgraph=True`, so no graph break) and
runs it through AOTAutograd (`aot_eager`); the inductor (C++ code generation) checks take minutes on 2 cores and are
marked slow."""

import pytest
import torch

from conftest import tiny_model


def _inputs(batch):
    return torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))


def test_tagging_graph_compiles_without_graph_breaks():
    torch._dynamo.reset()
    model = tiny_model(num_tags=6, descriptions_per_tag=3)
    with torch.no_grad():
        image_embeds = model.get_image_embeds(_inputs(2))
        expected = model(image_embeds=image_embeds, tag_indices=[5, 0, 2]).logits
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        actual = compiled(image_embeds=image_embeds, tag_indices=torch.tensor([5, 0, 2])).logits
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.slow
def test_inductor_decoder_matches_eager():
    torch._dynamo.reset()
    model = tiny_model(num_tags=6, descriptions_per_tag=3)
    with torch.no_grad():
        image_embeds = model.get_image_embeds(_inputs(2))
        expected = model(image_embeds=image_embeds).logits
        actual = torch.compile(model, dynamic=False)(image_embeds=image_embeds).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_inductor_full_model_matches_eager():
    torch._dynamo.reset()
    model = tiny_model(num_tags=6, descriptions_per_tag=3)
    compiled = torch.compile(model)
    with torch.no_grad():
        for batch in (1, 3):
            pixel_values = _inputs(batch)
            torch.testing.assert_close(
                compiled(pixel_values=pixel_values).logits, model(pixel_values=pixel_values).logits, atol=1e-5, rtol=1e-5
            )
