"""Tag heatmaps (`RamPlusModel.tag_heatmaps`), `transformers_ramplus.visualize` and `ramplus tag --heatmaps`."""

import copy
import json
import shutil
import sys

import pytest
import torch

from conftest import REFERENCE_IMAGES, spread_model
from transformers_ramplus import RamPlusModel, TagSet, enable_fast_inference
from transformers_ramplus.cli.main import main


GRID = 8  # tiny_config: 64 px, patch 4, one patch merging -> 8x8 image tokens (+ the global token)


@pytest.fixture(scope="module")
def pixel_values():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


def eager_attention(model, pixel_values, **inputs):
    """The decoder's attention weights recorded by the eager model: (layers, batch, heads, tags, 1 + GRID * GRID)."""
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    outputs = eager(pixel_values=pixel_values, output_attentions=True, **inputs)
    return torch.stack(outputs.cross_attentions), outputs.logits


def test_shapes_sums_and_the_eager_attention(model, pixel_values):
    out = model.tag_heatmaps(pixel_values, tags=["tag 3", 1])
    assert out.heatmaps.shape == (2, 2, GRID, GRID)
    assert out.logits.shape == out.global_attention.shape == (2, 2)
    assert out.tag_indices.tolist() == [3, 1] and out.tag_names == ["tag 3", "tag 1"]
    # attention probabilities: the grid and the global token share each query's unit mass
    torch.testing.assert_close(out.heatmaps.sum(dim=(-2, -1)) + out.global_attention, torch.ones(2, 2))
    assert out.heatmaps.min() >= 0
    attention, logits = eager_attention(model, pixel_values, tag_indices=torch.tensor([3, 1]))
    expected = attention.mean(dim=(0, 2))  # layers and heads
    torch.testing.assert_close(out.heatmaps, expected[..., 1:].reshape(2, 2, GRID, GRID), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.global_attention, expected[..., 0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)
    # row-major token order: the image token at (row, column) is token 1 + row * GRID + column
    torch.testing.assert_close(out.heatmaps[1, 0, 2, 5], expected[1, 0, 1 + 2 * GRID + 5], atol=1e-7, rtol=1e-6)
    # the maps differ between tags and images (a spread model attends differently): not a constant
    assert (out.heatmaps[0, 0] - out.heatmaps[0, 1]).abs().max() > 1e-3
    assert (out.heatmaps[0, 0] - out.heatmaps[1, 0]).abs().max() > 1e-3


def test_chosen_layers_and_heads(model, pixel_values):
    attention, _ = eager_attention(model, pixel_values)
    out = model.tag_heatmaps(pixel_values, layers=-1, heads=[0, 2])
    expected = attention[1][:, [0, 2]].mean(dim=1)[..., 1:].reshape(2, -1, GRID, GRID)
    torch.testing.assert_close(out.heatmaps, expected, atol=1e-6, rtol=1e-5)
    first = model.tag_heatmaps(pixel_values, layers=[0], heads=3)
    torch.testing.assert_close(first.heatmaps, attention[0][:, 3][..., 1:].reshape(2, -1, GRID, GRID), atol=1e-6, rtol=1e-5)
    assert out.tag_names == list(model.config.tag_names) and out.tag_indices.tolist() == list(range(5))


def test_normalization_and_target_sizes(model, pixel_values):
    raw = model.tag_heatmaps(pixel_values, tags=[0, 4])
    summed = model.tag_heatmaps(pixel_values, tags=[0, 4], normalize="sum")
    torch.testing.assert_close(summed.heatmaps.sum(dim=(-2, -1)), torch.ones(2, 2))
    torch.testing.assert_close(summed.heatmaps, raw.heatmaps / raw.heatmaps.sum(dim=(-2, -1), keepdim=True))
    peaked = model.tag_heatmaps(pixel_values, tags=[0, 4], normalize="max")
    torch.testing.assert_close(peaked.heatmaps.amax(dim=(-2, -1)), torch.ones(2, 2))
    sized = model.tag_heatmaps(pixel_values, tags=[0, 4], target_sizes=[(30, 50), (GRID, GRID)])
    assert isinstance(sized.heatmaps, list) and [tuple(m.shape) for m in sized.heatmaps] == [(2, 30, 50), (2, GRID, GRID)]
    torch.testing.assert_close(sized.heatmaps[1], raw.heatmaps[1])  # resizing to the grid itself changes nothing
    # the upsampled map keeps where the tag looks: its peak sits over the grid cell with the most attention
    for tag in range(2):
        row, column = divmod(int(raw.heatmaps[0, tag].argmax()), GRID)
        peak_row, peak_column = divmod(int(sized.heatmaps[0][tag].argmax()), 50)
        assert abs(peak_row * GRID / 30 - row - 0.5) <= 1.0 and abs(peak_column * GRID / 50 - column - 0.5) <= 1.0
    as_tensor = model.tag_heatmaps(pixel_values, tags=[0, 4], target_sizes=torch.tensor([[30, 50], [20, 10]]))
    torch.testing.assert_close(as_tensor.heatmaps[0], sized.heatmaps[0])


def test_sdpa_eager_optimized_and_no_grad(pixel_values):
    model = spread_model(seed=3)
    assert model.config._attn_implementation == "sdpa"
    sdpa = model.tag_heatmaps(pixel_values, tags=[2, 0, 1])
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    torch.testing.assert_close(eager.tag_heatmaps(pixel_values, tags=[2, 0, 1]).heatmaps, sdpa.heatmaps, atol=1e-6, rtol=1e-5)
    optimized = enable_fast_inference(copy.deepcopy(model))
    fast = optimized.tag_heatmaps(pixel_values, tags=[2, 0, 1])
    torch.testing.assert_close(fast.heatmaps, sdpa.heatmaps, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        reference_logits = optimized(pixel_values=pixel_values, tag_indices=torch.tensor([2, 0, 1])).logits
    torch.testing.assert_close(fast.logits, reference_logits, atol=1e-4, rtol=1e-4)
    # parameters that require gradients: the maps come without a graph (and inside no_grad too)
    assert any(p.requires_grad for p in model.parameters()) and sdpa.heatmaps.grad_fn is None
    with torch.no_grad():
        torch.testing.assert_close(model.tag_heatmaps(pixel_values, tags=[2, 0, 1]).heatmaps, sdpa.heatmaps)


def test_lora_adapted_attention_is_what_the_maps_show(pixel_values):
    pytest.importorskip("peft")
    from transformers_ramplus.training.adapters import apply_lora

    model = spread_model(seed=4)
    before = model.tag_heatmaps(pixel_values, tags=[0, 1]).heatmaps
    lora = apply_lora(model).eval()
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)  # an adapter that changes the attention
    adapted = lora.tag_heatmaps(pixel_values, tags=[0, 1])
    assert (adapted.heatmaps - before).abs().max() > 1e-3
    lora.base_model.model.set_attn_implementation("eager")
    outputs = lora(pixel_values=pixel_values, tag_indices=torch.tensor([0, 1]), output_attentions=True)
    expected = torch.stack(outputs.cross_attentions).mean(dim=(0, 2))[..., 1:].reshape(2, 2, GRID, GRID)
    torch.testing.assert_close(adapted.heatmaps, expected, atol=1e-6, rtol=1e-5)


def test_tag_sets_and_label_embeds(model, pixel_values):
    builtin = TagSet.builtin(model, ["tag 4", "tag 2"])
    by_set = model.tag_heatmaps(pixel_values, tags=builtin)
    torch.testing.assert_close(by_set.heatmaps, model.tag_heatmaps(pixel_values, tags=[4, 2]).heatmaps)
    assert by_set.tag_names == ["tag 4", "tag 2"] and by_set.tag_indices.tolist() == [4, 2]
    # an open set: new embeddings with a different number of descriptions per tag
    torch.manual_seed(5)
    embeds = torch.nn.functional.normalize(torch.randn(3, 2, model.config.text_embed_dim), dim=-1)
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    open_set = TagSet(["red", "green", "blue"], label_embeds=embeds, description_mask=mask)
    out = model.tag_heatmaps(pixel_values, tags=open_set)
    assert out.tag_names == ["red", "green", "blue"] and out.tag_indices is None
    attention, logits = eager_attention(model, pixel_values, label_embeds=embeds, description_mask=mask)
    expected = attention.mean(dim=(0, 2))[..., 1:].reshape(2, 3, GRID, GRID)
    torch.testing.assert_close(out.heatmaps, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"tags": ["tag 1", "zebra"]}, ValueError, "zebra"),
        ({"tags": [7]}, ValueError, r"\[7\]"),
        ({"tags": []}, ValueError, "tags"),
        ({"tags": [True]}, TypeError, "bool"),
        ({"tags": [1.5]}, TypeError, "float"),
        ({"layers": 2}, ValueError, "layers"),
        ({"heads": [0, 4]}, ValueError, "heads"),
        ({"heads": "all"}, ValueError, "heads"),
        ({"normalize": "softmax"}, ValueError, "normalize"),
        ({"target_sizes": [(10, 10)]}, ValueError, "target_sizes"),
        ({"target_sizes": [(10, 10), (0, 5)]}, ValueError, "target_sizes"),
        ({"target_sizes": [(10, 10), (5,)]}, ValueError, "target_sizes"),
    ],
)
def test_errors(model, pixel_values, kwargs, error, message):
    with pytest.raises(error, match=message):
        model.tag_heatmaps(pixel_values, **kwargs)


def test_bad_pixel_values(model):
    with pytest.raises(ValueError, match="pixel_values"):
        model.tag_heatmaps(torch.randn(3, 64, 64))
    with pytest.raises(TypeError, match="pixel_values"):
        model.tag_heatmaps([[1.0]])
    with pytest.raises(ValueError, match="patch size"):
        model.tag_heatmaps(torch.randn(1, 3, 62, 64))


# ------------------------------------------------------------------------------------------------------ visualize
def test_visualize_returns_figures(model, pixel_values):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from transformers_ramplus.visualize import plot_heatmaps, plot_tagged_images, plot_tags

    tags = [{"label": "zebra", "score": 0.91}, {"label": "grass", "score": 0.55}]
    figure = plot_tags(REFERENCE_IMAGES[0], tags, title="two tags")
    assert isinstance(figure, Figure) and len(figure.axes) == 1
    assert "zebra  0.91" in figure.axes[0].texts[0].get_text()
    grid = plot_tagged_images(REFERENCE_IMAGES, [tags, []], columns=2)
    assert len(grid.axes) == 2 and grid.axes[1].texts[0].get_text() == "(no tags)"
    assert grid.axes[0].get_title() == REFERENCE_IMAGES[0].name
    out = model.tag_heatmaps(pixel_values, tags=[0, 1, 2])
    image = (torch.rand(40, 60, 3) * 255).to(torch.uint8).numpy()
    heat = plot_heatmaps(image, out, image_index=1, columns=2, tags=tags)
    assert len(heat.axes) == 4 and [ax.get_title() for ax in heat.axes[1:]] == [
        f"tag {i}  {torch.sigmoid(out.logits[1, i]).item():.2f}" for i in range(3)
    ]
    overlay = heat.axes[1].images[1].get_array()
    assert overlay.shape == (GRID, GRID)  # stretched over the 40x60 image by its extent
    assert heat.axes[1].images[1].get_extent() == [0, 60, 40, 0]
    import io

    buffer = io.BytesIO()
    heat.savefig(buffer, format="png")  # draws without pyplot or a display
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="3 heatmaps but 2 tag_names"):
        plot_heatmaps(image, out.heatmaps[0], tag_names=["a", "b"])
    with pytest.raises(ValueError, match="2 images but 1 results"):
        plot_tagged_images(REFERENCE_IMAGES, [tags])


def test_visualize_without_matplotlib_names_the_extra(monkeypatch):
    from transformers_ramplus.visualize import plot_tags

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"transformers-ramplus\[visualize\]"):
        plot_tags(REFERENCE_IMAGES[0], [])


# ------------------------------------------------------------------------------------------------ ramplus tag --heatmaps
def test_file_names_are_safe_and_distinct():
    from transformers_ramplus.inference.heatmaps import heatmap_file_name

    names = [
        heatmap_file_name(key)
        for key in ("/a/x.jpg", "/b/x.jpg", "/a/we?ird\nname*.JPG", "https://host/p/cat.png?size=2#top", "/a/.hidden", "/a/../..")
    ]
    assert len(set(names)) == len(names)
    assert names[0].startswith("x-") and names[2].startswith("we_ird_name-") and names[3].startswith("cat-")
    for name in names:
        assert name.endswith(".png") and not name.startswith(".") and "/" not in name and "\n" not in name


def test_tag_writes_heatmap_pngs_and_resumes(converted_tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    photos = tmp_path / "photos"
    (photos / "odd dir").mkdir(parents=True)
    shutil.copy(REFERENCE_IMAGES[0], photos / REFERENCE_IMAGES[0].name)
    shutil.copy(REFERENCE_IMAGES[1], photos / "odd dir" / "a b?c.jpg")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    maps = photos / "maps"  # inside the walked folder: its PNGs must not become inputs
    output = tmp_path / "tags.jsonl"
    command = ["tag", str(photos), "-r", "--model", str(converted_tiny), "-o", str(output), "--heatmaps", str(maps), "--no-progress"]
    assert main(command + ["--heatmap-tags", "2"]) == 1  # the broken file fails, the others are tagged
    pngs = sorted(maps.glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert any(p.name.startswith("a_b_c-") for p in pngs)
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 3 and not any("maps" in r["path"] for r in records)
    stamps = {p.name: p.stat().st_mtime_ns for p in pngs}
    capsys.readouterr()

    # a rerun keeps finished images and their PNGs
    assert main(command + ["--heatmap-tags", "2"]) == 1
    assert {p.name: p.stat().st_mtime_ns for p in maps.glob("*.png")} == stamps
    assert "2 skipped" in capsys.readouterr().err
    # a lost PNG: only that image is redone
    pngs[0].unlink()
    assert main(command + ["--heatmap-tags", "2"]) == 1
    err = capsys.readouterr().err
    assert "heatmaps of 1 tagged image(s) are missing" in err and "1 skipped" in err
    assert pngs[0].is_file() and pngs[1].stat().st_mtime_ns == stamps[pngs[1].name]
    assert sum('"tags"' in line for line in output.read_text().splitlines()) == 2  # each image once
    # other heatmap tags: every PNG is redrawn
    assert main(command + ["--heatmap-tags", "belly,abacus"]) == 1
    assert "drawn with other options" in capsys.readouterr().err
    assert all(p.stat().st_mtime_ns != stamps.get(p.name) for p in maps.glob("*.png") if p.name in stamps)
    assert len(list(maps.glob("*.png"))) == 2 and not list(maps.glob(".*tmp*"))


def test_tag_heatmap_usage_errors(converted_tiny, tmp_path, capsys):
    image = str(REFERENCE_IMAGES[0])
    base = ["tag", image, "--model", str(converted_tiny), "--no-progress"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["--heatmap-tags", "3"], "needs --heatmaps"),
        (["--heatmaps", str(a_file)], "is a file"),
        (["--heatmaps", str(tmp_path / "m"), "--heatmap-tags", "0"], "positive number"),
        (["--heatmaps", str(tmp_path / "m"), "--heatmap-tags", "belly,zebra"], "zebra"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err


def test_heatmaps_in_the_input_folder_are_not_inputs(converted_tiny, tmp_path):
    pytest.importorskip("matplotlib")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(REFERENCE_IMAGES[0], photos / "photo.jpg")
    (photos / "drawing-0123456789.png").write_bytes(REFERENCE_IMAGES[1].read_bytes())  # a user's file, named alike
    output = tmp_path / "tags.jsonl"
    command = ["tag", str(photos), "--model", str(converted_tiny), "-o", str(output), "--heatmaps", str(photos), "--no-progress"]
    for _ in range(2):
        assert main(command) == 0
    tagged = sorted(json.loads(line)["path"].rsplit("/", 1)[-1] for line in output.read_text().splitlines())
    assert tagged == ["photo.jpg"]  # the PNGs written next to it are not tagged (nor a file named like one: README)
    assert len(list(photos.glob("photo-*.png"))) == 1
