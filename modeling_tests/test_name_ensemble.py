"""Tags given by name: the authors' 63-template ensemble, exactly (texts, rules, averaging), as the default of
TagSet.from_model, the pipeline's candidate_labels and `ramplus tag --labels`; the earlier 14 templates as "compact".

Expected texts come from the packaged copy of the authors' data (src/transformers_ramplus/data/), so these tests
need nothing outside the repository."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import transformers_ramplus
from conftest import REFERENCE_IMAGES, tiny_text_model
from transformers import pipeline
from transformers_ramplus.cli.main import main
from transformers_ramplus.tags.encoding import clear_text_cache
from transformers_ramplus.tags.tag_set import TagSet
from transformers_ramplus.tags.templates import (
    COMPACT_TEMPLATES,
    RAM_PLUS_TEMPLATES,
    fill_template,
    load_name_ensemble_data,
    name_prompts,
    ram_plus_article,
    ram_plus_name,
    ram_plus_name_prompts,
)


ENSEMBLE = load_name_ensemble_data()


def clip_one(model, tokenizer, text):
    """One text through the CLIP text tower alone (no padding), its raw (unnormalized) embedding."""
    encoded = tokenizer([text], truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        return model.text_model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).text_embeds[0]


@pytest.fixture(scope="module")
def text_model():
    return tiny_text_model()


def test_the_packaged_file_is_the_one_the_code_runs_on():
    packaged = Path(transformers_ramplus.__file__).parent / "tags" / "data" / "openset_name_ensemble.json"
    assert packaged.is_file()
    assert json.loads(packaged.read_text(encoding="utf-8")) == ENSEMBLE
    assert len(ENSEMBLE["templates"]) == 63 and tuple(ENSEMBLE["templates"]) == RAM_PLUS_TEMPLATES
    assert set(ENSEMBLE["rules"]) >= {"name", "article", "fill", "prefix", "embedding"}
    assert len(ENSEMBLE["examples"]) == 8
    assert len(COMPACT_TEMPLATES) == 14 and set(COMPACT_TEMPLATES) != set(RAM_PLUS_TEMPLATES)


@pytest.mark.parametrize("name", sorted(ENSEMBLE["examples"]))
def test_every_text_of_the_authors_examples(name):
    expected = ENSEMBLE["examples"][name]
    assert len(expected) == 63
    assert ram_plus_name_prompts(name) == expected
    assert name_prompts(name) == expected and name_prompts(name, "ram_plus") == expected  # the default


def test_the_rules_one_by_one():
    # the article looks at the ORIGINAL name's first character, lower-case vowels only
    assert [ram_plus_article(n) for n in ("apple", "egg", "ice", "owl", "umbrella")] == ["an"] * 5
    assert [ram_plus_article(n) for n in ("Aerial", "Egg", "the Thinker", "_apple", "yak")] == ["a"] * 5
    assert ram_plus_name_prompts("Egg")[0] == "There is a egg in the scene."
    # name processing: lower case, '_' -> ' ', '/' -> ' or ', every trailing '.' removed (inner dots kept)
    assert ram_plus_name("Traffic_Light") == "traffic light"
    assert ram_plus_name("cat/dog/Bird") == "cat or dog or bird"
    assert ram_plus_name("U.S. flag...") == "u.s. flag"
    # "This is " before every text starting with "a" (any word) or "the"; the others are left alone
    texts = ram_plus_name_prompts("kite")
    for template, text in zip(RAM_PLUS_TEMPLATES, texts):
        plain = template.format("kite", article="a")
        assert text == ("This is " + plain if plain.startswith(("a", "the")) else plain)
    assert sum(t.startswith("This is ") for t in texts) == 58
    assert "This is an embroidered kite." in texts and "itap of a kite." in texts
    # braces in a name are kept as written
    assert ram_plus_name_prompts("x{}y")[-1] == "This is a painting of a x{}y."
    with pytest.raises(ValueError, match="empty once processed"):
        ram_plus_name_prompts("...")
    # your own templates and the compact set are filled as written
    assert name_prompts("Apple", "compact") == [fill_template(t, "Apple") for t in COMPACT_TEMPLATES]
    assert name_prompts("Apple", ["{article} {} here"]) == ["an Apple here"]
    with pytest.raises(ValueError, match="unknown template set"):
        name_prompts("kite", "ram++")
    with pytest.raises(ValueError, match="contain"):
        name_prompts("kite", ["no placeholder"])


def test_averaging_normalizes_each_text_then_the_mean(text_model):
    model, tokenizer = text_model
    clear_text_cache(model)
    names = ["Aerial photography", "cat/dog", "U.S. flag."]
    tag_set = TagSet.from_model(model, names, tokenizer=tokenizer, batch_size=50)  # the default: the authors' ensemble
    assert tag_set.label_embeds.shape == (3, 1, 24) and tag_set.description_mask is None
    assert tag_set.thresholds == [0.5, 0.5, 0.5] and tag_set.templates == "ram_plus"
    for row, name in enumerate(names):
        raw = torch.stack([clip_one(model, tokenizer, text) for text in ENSEMBLE["examples"][name]])
        expected = F.normalize(F.normalize(raw, dim=-1).mean(dim=0), dim=-1)
        torch.testing.assert_close(tag_set.label_embeds[row, 0], expected, atol=1e-5, rtol=1e-5)
        # the check bites: averaging the raw embeddings (no per-text normalization) gives another direction here
        unnormalized = F.normalize(raw.mean(dim=0), dim=-1)
        assert not torch.allclose(unnormalized, expected, atol=1e-4)
    compact = TagSet.from_model(model, names, tokenizer=tokenizer, templates="compact")
    for row, name in enumerate(names):
        raw = torch.stack([clip_one(model, tokenizer, fill_template(t, name)) for t in COMPACT_TEMPLATES])
        expected = F.normalize(F.normalize(raw, dim=-1).mean(dim=0), dim=-1)
        torch.testing.assert_close(compact.label_embeds[row, 0], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(compact.label_embeds, tag_set.label_embeds, atol=1e-4)


def test_the_template_choice_is_saved_with_the_tag_set(text_model, tmp_path):
    model, tokenizer = text_model
    for templates in ("ram_plus", "compact", ("a {} here", "the {}")):
        tag_set = TagSet.from_model(model, ["kite"], tokenizer=tokenizer, templates=templates)
        tag_set.save_pretrained(tmp_path / "set")
        loaded = TagSet.from_pretrained(tmp_path / "set")
        assert loaded.templates == templates
        torch.testing.assert_close(loaded.label_embeds, tag_set.label_embeds)


def test_pipeline_candidate_labels_use_the_authors_ensemble(text_model):
    model, tokenizer = text_model
    tagger = pipeline("zero-shot-image-tagging", model=model, tokenizer=tokenizer, device="cpu")
    expected = TagSet.from_model(model, ["tag 1", "traffic_light"], tokenizer=tokenizer, templates="ram_plus")
    got = tagger.get_tag_set(["tag 1", "traffic_light"])
    torch.testing.assert_close(got.label_embeds, expected.label_embeds)
    compact = tagger.get_tag_set(["tag 1", "traffic_light"], templates="compact")
    assert not torch.allclose(compact.label_embeds[1], expected.label_embeds[1], atol=1e-4)
    scores = tagger(str(REFERENCE_IMAGES[0]), candidate_labels=["tag 1", "traffic_light"], threshold=0.0)
    with torch.no_grad():
        pixel_values = tagger.image_processor(str(REFERENCE_IMAGES[0]), return_tensors="pt")["pixel_values"]
        logits = model(pixel_values=pixel_values, **expected.model_inputs(model)).logits[0]
    by_label = {t["label"]: t["score"] for t in scores}
    assert by_label["traffic_light"] == pytest.approx(float(torch.sigmoid(logits[1])), abs=1e-5)


def test_cli_labels_use_the_authors_ensemble(converted_tiny_text, tmp_path):
    from transformers import AutoModel, AutoProcessor

    image = str(REFERENCE_IMAGES[0])
    scores = {}
    for choice in (None, "compact"):
        output = tmp_path / f"{choice}.jsonl"
        extra = [] if choice is None else ["--name-templates", choice]
        code = main(["tag", image, "--model", str(converted_tiny_text), "--threshold", "0.0", "--no-progress",
                     "--output", str(output), *extra, "--labels", "red panda", "U.S. flag."])
        assert code == 0
        record = json.loads(output.read_text().splitlines()[0])
        scores[choice] = {t["label"]: t["score"] for t in record["tags"]}
    model = AutoModel.from_pretrained(converted_tiny_text).eval()
    processor = AutoProcessor.from_pretrained(converted_tiny_text)
    pixel_values = processor(images=[image])["pixel_values"]
    for choice, templates in ((None, "ram_plus"), ("compact", "compact")):
        tag_set = TagSet.from_model(model, ["red panda", "U.S. flag."], tokenizer=processor, templates=templates)
        with torch.no_grad():
            probs = torch.sigmoid(model(pixel_values=pixel_values, **tag_set.model_inputs(model)).logits[0])
        assert [scores[choice][n] for n in tag_set.names] == pytest.approx(probs.tolist(), abs=1e-5)
    assert scores[None] != pytest.approx(scores["compact"], abs=1e-6)
