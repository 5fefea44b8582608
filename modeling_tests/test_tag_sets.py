"""Tag sets: built-in reuse, template ensemble, descriptions with masks, cache, save/load."""

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_model, tiny_text_model
from transformers_ramplus.tags.descriptions import load_descriptions, save_descriptions
from transformers_ramplus.tags.encoding import clear_text_cache, encode_texts
from transformers_ramplus.tags.tag_set import TagSet
from transformers_ramplus.tags.templates import fill_template


def direct_clip(model, tokenizer, text):
    """One text through the CLIP text tower, no padding at all, then L2-normalized."""
    encoded = tokenizer([text], truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        embeds = model.text_model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).text_embeds
    return F.normalize(embeds[0], dim=-1)


@pytest.fixture(scope="module")
def text_model():
    return tiny_text_model()


DESCRIPTIONS = {
    "zebra": ["a striped horse of the savanna.", "black and white stripes", "an animal"],
    "lighthouse": ["a tall tower with a bright lamp on the coast, guiding ships at night"],
}


def test_description_embeddings_equal_direct_clip(text_model):
    model, tokenizer = text_model
    clear_text_cache()
    tag_set = TagSet.from_model(model, DESCRIPTIONS, tokenizer=tokenizer, batch_size=2)
    assert tag_set.names == ["zebra", "lighthouse"]
    assert tag_set.label_embeds.shape == (2, 3, 24)
    assert tag_set.description_counts == [3, 1]
    assert tag_set.description_mask.tolist() == [[True, True, True], [True, False, False]]
    assert tag_set.thresholds == [0.5, 0.5]
    for row, (tag, texts) in enumerate(DESCRIPTIONS.items()):
        for column, text in enumerate(texts):
            expected = direct_clip(model, tokenizer, text)
            torch.testing.assert_close(tag_set.label_embeds[row, column], expected, atol=1e-5, rtol=1e-5)
            assert abs(float(tag_set.label_embeds[row, column].norm()) - 1.0) < 1e-5
    # padding every text to 77 tokens gives the same embeddings as dynamic padding
    texts = [t for texts in DESCRIPTIONS.values() for t in texts]
    dynamic = encode_texts(model, tokenizer, texts, batch_size=3, use_cache=False)
    fixed = encode_texts(model, tokenizer, texts, batch_size=3, padding="max_length", use_cache=False)
    torch.testing.assert_close(dynamic, fixed, atol=1e-5, rtol=1e-5)


def test_names_use_a_normalized_template_ensemble(text_model):
    model, tokenizer = text_model
    templates = ("a photo of {article} {}.", "There is the {} in the scene.")
    tag_set = TagSet.from_model(model, ["apple", "kite"], tokenizer=tokenizer, templates=templates)
    assert tag_set.label_embeds.shape == (2, 1, 24)
    assert tag_set.description_mask is None
    assert fill_template(templates[0], "apple") == "a photo of an apple."
    for row, name in enumerate(["apple", "kite"]):
        members = torch.stack([direct_clip(model, tokenizer, fill_template(t, name)) for t in templates])
        expected = F.normalize(members.mean(dim=0), dim=-1)
        torch.testing.assert_close(tag_set.label_embeds[row, 0], expected, atol=1e-5, rtol=1e-5)
    default = TagSet.from_model(model, ["kite"], tokenizer=tokenizer)  # the authors' 63 templates
    assert not torch.allclose(default.label_embeds, tag_set.label_embeds[1:])


def test_masked_variable_counts_equal_the_unpadded_equal_length_case(text_model):
    model, tokenizer = text_model
    pixel_values = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mixed = TagSet.from_model(model, DESCRIPTIONS, tokenizer=tokenizer)
    with torch.no_grad():
        image_embeds = model.get_image_embeds(pixel_values)
        logits = model(image_embeds=image_embeds, **mixed.model_inputs(model)).logits
        for row, (tag, texts) in enumerate(DESCRIPTIONS.items()):
            alone = TagSet.from_model(model, {tag: texts}, tokenizer=tokenizer)
            assert alone.description_mask is None and alone.label_embeds.shape[1] == len(texts)
            expected = model(image_embeds=image_embeds, **alone.model_inputs(model)).logits[:, 0]
            torch.testing.assert_close(logits[:, row], expected, atol=1e-5, rtol=1e-5)
        # whatever the padded rows hold, the mask keeps them out of the re-weighting
        noisy = mixed.label_embeds.clone()
        noisy[~mixed.description_mask] = F.normalize(torch.randn(int((~mixed.description_mask).sum()), 24), dim=-1)
        noisy_logits = model(image_embeds=image_embeds, label_embeds=noisy, description_mask=mixed.description_mask).logits
        torch.testing.assert_close(noisy_logits, logits)
        unmasked = model(image_embeds=image_embeds, label_embeds=noisy).logits
        assert not torch.allclose(unmasked[:, 1], logits[:, 1], atol=1e-4)


def test_builtin_tags_need_no_text_tower_and_keep_their_thresholds():
    model = tiny_model(num_tags=5, tag_thresholds=[0.6, 0.7, 0.8, 0.9, 0.65])
    assert model.text_model is None
    tag_set = TagSet.from_model(model, ["tag 3", "tag 1"])
    assert tag_set.is_builtin_subset and tag_set.builtin_indices == [3, 1]
    assert tag_set.thresholds == [0.9, 0.7]
    inputs = tag_set.model_inputs(model)
    assert inputs["tag_indices"].tolist() == [3, 1]
    pixel_values = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(pixel_values=pixel_values).logits
        subset = model(pixel_values=pixel_values, **inputs).logits
    torch.testing.assert_close(subset, full[:, [3, 1]])
    assert len(TagSet.from_model(model, None)) == 5
    with pytest.raises(ValueError, match="text tower"):
        TagSet.from_model(model, ["tag 1", "zebra"])
    with pytest.raises(ValueError, match="not a built-in tag"):
        TagSet.builtin(model, ["zebra"])


def test_builtin_and_new_tags_mix_in_one_set(text_model):
    model, tokenizer = text_model
    tag_set = TagSet.from_model(model, {"tag 2": None, "zebra": DESCRIPTIONS["zebra"][:2], "kite": []}, tokenizer=tokenizer)
    assert tag_set.builtin_indices == [2, None, None]
    assert tag_set.thresholds == [model.config.thresholds()[2], 0.5, 0.5]
    d = model.config.descriptions_per_tag
    assert tag_set.description_counts == [d, 2, 1]
    builtin_rows = model.label_embeds.view(model.config.num_tags, d, -1)[2]
    torch.testing.assert_close(tag_set.label_embeds[0, :d], builtin_rows)
    pixel_values = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        closed = model(pixel_values=pixel_values).logits
        mixed = model(pixel_values=pixel_values, **tag_set.model_inputs(model)).logits
    torch.testing.assert_close(mixed[:, 0], closed[:, 2], atol=1e-5, rtol=1e-5)
    # use_builtin=False embeds the built-in name like any new one
    fresh = TagSet.from_model(model, ["tag 2"], tokenizer=tokenizer, use_builtin=False)
    assert fresh.builtin_indices == [None] and fresh.thresholds == [0.5]


def test_repeating_the_same_tags_does_no_text_work(text_model):
    model, tokenizer = text_model
    clear_text_cache(model)
    calls = []
    handle = model.text_model.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        first = TagSet.from_model(model, ["kite", "zebra"], tokenizer=tokenizer, batch_size=4)
        assert len(calls) > 0
        calls.clear()
        second = TagSet.from_model(model, ["zebra", "kite"], tokenizer=tokenizer, batch_size=4)
        assert calls == []
        torch.testing.assert_close(second.label_embeds, first.label_embeds.flip(0))
        TagSet.from_model(model, ["kite", "dog"], tokenizer=tokenizer, batch_size=100)
        assert len(calls) == 1  # only the new tag's templates, in one batch
    finally:
        handle.remove()


def test_progress_bar_for_large_sets(text_model, capsys):
    model, tokenizer = text_model
    encode_texts(model, tokenizer, [f"thing number {i}" for i in range(6)], batch_size=2, use_cache=False)
    assert "encoding text" in capsys.readouterr().err
    encode_texts(model, tokenizer, ["one small batch"], batch_size=2, use_cache=False)
    assert "encoding text" not in capsys.readouterr().err


def test_save_and_load_round_trip(text_model, tmp_path):
    model, tokenizer = text_model
    tag_set = TagSet.from_model(model, {"tag 0": None, **DESCRIPTIONS}, tokenizer=tokenizer)
    tag_set.save_pretrained(tmp_path / "set")
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["tag_set.json", "tag_set.safetensors"]
    meta = json.loads((tmp_path / "set" / "tag_set.json").read_text())
    assert meta["names"] == ["tag 0", "zebra", "lighthouse"] and meta["descriptions"][1] == DESCRIPTIONS["zebra"]
    loaded = TagSet.from_pretrained(tmp_path / "set")
    assert loaded.names == tag_set.names and loaded.thresholds == tag_set.thresholds
    assert loaded.descriptions == tag_set.descriptions and loaded.builtin_indices == tag_set.builtin_indices
    torch.testing.assert_close(loaded.label_embeds, tag_set.label_embeds)
    assert torch.equal(loaded.description_mask, tag_set.description_mask)
    # a set of built-in tags stores names and indices only, and still checks it is used with the right model
    builtin = TagSet.builtin(model, ["tag 4", "tag 0"])
    builtin.save_pretrained(tmp_path / "builtin")
    assert not (tmp_path / "builtin" / "tag_set.safetensors").exists()
    reloaded = TagSet.from_pretrained(tmp_path / "builtin")
    assert reloaded.model_inputs(model)["tag_indices"].tolist() == [4, 0]
    other = tiny_model(num_tags=5, id2label={i: f"other {i}" for i in range(5)})
    with pytest.raises(ValueError, match="does not have"):
        reloaded.model_inputs(other)
    with pytest.raises(ValueError, match="not a saved tag set"):
        TagSet.from_pretrained(tmp_path)


def test_description_files_in_the_original_format(tmp_path, shared_data_dir):
    path = shared_data_dir / "openimages_rare_200_llm_tag_descriptions.json"
    descriptions = load_descriptions(path)
    assert len(descriptions) == 200
    assert {len(v) for v in descriptions.values()} == {51}
    tag, texts = next(iter(descriptions.items()))
    assert texts[0].lower().startswith("a photo of")
    save_descriptions({"kite": ["a", "b"], "zebra": ["c"]}, tmp_path / "d.json")
    assert json.loads((tmp_path / "d.json").read_text()) == [{"kite": ["a", "b"]}, {"zebra": ["c"]}]
    assert load_descriptions(tmp_path / "d.json") == {"kite": ["a", "b"], "zebra": ["c"]}
    (tmp_path / "bad.json").write_text('[{"kite": "a", "zebra": "b"}]')
    with pytest.raises(ValueError, match="one-key object"):
        load_descriptions(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_descriptions(tmp_path / "broken.json")


def test_convert_bundles_a_local_clip_text_tower(converted_tiny_text, tiny_clip_dir):
    from transformers import AutoModel, AutoProcessor, CLIPTextModelWithProjection

    model = AutoModel.from_pretrained(converted_tiny_text).eval()
    processor = AutoProcessor.from_pretrained(converted_tiny_text)
    clip = CLIPTextModelWithProjection.from_pretrained(tiny_clip_dir).eval()
    assert processor.tokenizer is not None and model.text_model is not None
    assert not any(p.requires_grad for p in model.text_model.parameters())
    texts = ["a photo of a zebra.", "black and white stripes on a horse"]
    batch = processor(text=texts)
    with torch.no_grad():
        expected = F.normalize(clip(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).text_embeds, dim=-1)
    torch.testing.assert_close(model.encode_text(batch["input_ids"], batch["attention_mask"]), expected)
    tag_set = TagSet.from_model(model, {"zebra": texts}, tokenizer=processor)
    torch.testing.assert_close(tag_set.label_embeds[0], expected, atol=1e-5, rtol=1e-5)
    # without `tokenizer=`, the one saved next to the model is used
    clear_text_cache(model)
    found = TagSet.from_model(model, {"zebra": texts})
    torch.testing.assert_close(found.label_embeds, tag_set.label_embeds)


def test_tag_set_loads_by_hub_id(text_model, tmp_path):
    import local_hub  # the local Hub stand-in next to this file
    import subprocess
    import sys
    import textwrap

    model, tokenizer = text_model
    tag_set = TagSet.from_model(model, {"tag 0": None, **DESCRIPTIONS}, tokenizer=tokenizer)
    tag_set.save_pretrained(tmp_path / "set")
    torch.save(tag_set.label_embeds, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import torch
        from transformers_ramplus import TagSet
        loaded = TagSet.from_pretrained("someone/my-tags")
        assert loaded.names == {tag_set.names!r}, loaded.names
        assert loaded.thresholds == {tag_set.thresholds!r}
        torch.testing.assert_close(loaded.label_embeds, torch.load({str(tmp_path / 'expected.pt')!r}))
        print("hub-tag-set-ok")
        """
    )
    with local_hub.LocalHub() as hub:
        hub.add_repo("someone/my-tags", tmp_path / "set")
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
            env=local_hub.hub_env(hub, tmp_path / "hf"),
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hub-tag-set-ok" in result.stdout
    assert any(r.endswith("tag_set.safetensors") for r in hub.requests)
