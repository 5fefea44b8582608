import pytest
import torch

from transformers import AutoConfig, SwinConfig
from transformers_ramplus import RamPlusConfig

from conftest import tiny_config, tiny_model


def test_defaults_are_the_released_model():
    config = RamPlusConfig()
    vision = config.vision_config
    assert isinstance(vision, SwinConfig)
    assert (vision.embed_dim, list(vision.depths), list(vision.num_heads), vision.window_size) == (
        192,
        [2, 2, 18, 2],
        [6, 12, 24, 48],
        12,
    )
    assert vision.image_size == 384 and vision.hidden_size == 1536 and not vision.use_absolute_embeddings
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 2, 4)
    assert (config.intermediate_size, config.layer_norm_eps, config.text_embed_dim) == (3072, 1e-12, 512)
    assert config.descriptions_per_tag == 51 and config.text_config is None


def test_swin_b_preset():
    config = RamPlusConfig.from_preset("swin_b")
    assert config.vision_config.embed_dim == 128
    assert list(config.vision_config.num_heads) == [4, 8, 16, 32]
    assert config.vision_config.hidden_size == 1024
    with pytest.raises(ValueError, match="swin_x"):
        RamPlusConfig.from_preset("swin_x")


def test_round_trip_keeps_tags_and_thresholds(tmp_path):
    config = tiny_config(num_tags=3, tag_thresholds=[0.6, 0.7, 0.8], tag_names_chinese=["甲", "乙", "丙"])
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, RamPlusConfig)
    assert loaded.tag_names == ["tag 0", "tag 1", "tag 2"]
    assert loaded.label2id == {"tag 0": 0, "tag 1": 1, "tag 2": 2}
    assert loaded.thresholds() == [0.6, 0.7, 0.8]
    assert loaded.tag_names_chinese == ["甲", "乙", "丙"]
    assert loaded.vision_config.embed_dim == 8


def test_default_threshold_applies_without_per_tag_thresholds():
    assert tiny_config(num_tags=2, default_threshold=0.5).thresholds() == [0.5, 0.5]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"tag_thresholds": [0.5, 0.5]}, "tag_thresholds"),
        ({"tag_thresholds": [0.5, 0.5, 1.2, 0.5, 0.5]}, r"tag_thresholds\[2\]"),
        ({"tag_thresholds": [0.5, 0.5, -0.1, 0.5, 0.5]}, r"tag_thresholds\[2\]"),
        ({"tag_thresholds": [0.5, 0.5, float("nan"), 0.5, 0.5]}, r"tag_thresholds\[2\].*nan"),
        ({"default_threshold": float("nan")}, "default_threshold"),
        ({"default_threshold": 1.5}, "default_threshold"),
        ({"num_attention_heads": 5}, "num_attention_heads"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"tag_names_chinese": ["a"]}, "tag_names_chinese"),
        ({"vision_config": {"embed_dim": 10, "depths": [1, 1], "num_heads": [3, 3]}}, r"vision_config.num_heads\[0\]"),
        ({"tag_loss_clip": 1.5}, "tag_loss_clip"),
        ({"align_loss_gamma_neg": -1.0}, "align_loss_gamma_neg"),
    ],
)
def test_inconsistent_values_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_config(**overrides)


def _unit_rows(num_tags, descriptions=3):
    return torch.nn.functional.normalize(torch.randn(num_tags, descriptions, 24), dim=-1)


def test_set_vocabulary_rejects_duplicates():
    model = tiny_model(num_tags=2)
    with pytest.raises(ValueError, match="unique"):
        model.set_vocabulary(["cat", "cat"], _unit_rows(2))
    model.set_vocabulary(["cat", "dog", "bird"], _unit_rows(3), thresholds=[0.5, 0.6, 0.7])
    config = model.config
    assert config.num_tags == 3 and config.label2id["bird"] == 2
    assert config.vocabulary() == {
        "names": ["cat", "dog", "bird"], "thresholds": [0.5, 0.6, 0.7], "chinese_names": None, "description_counts": None
    }


def test_failed_set_vocabulary_leaves_the_config_and_embeddings_unchanged():
    model = tiny_model(num_tags=2)
    before = model.label_embeds.clone()
    with pytest.raises(ValueError, match="tag_thresholds"):
        model.set_vocabulary(["x", "y", "z"], _unit_rows(3), thresholds=[0.5])
    with pytest.raises(ValueError, match="does not fit"):
        model.set_vocabulary(["x", "y", "z"], _unit_rows(2))
    assert model.config.tag_names == ["tag 0", "tag 1"] and model.config.tag_thresholds is None
    assert model.label_embeds.equal(before) and not model.vocabulary_changed


def test_threshold_one_disables_a_tag():
    # the released threshold file holds 1.0 for 10 tags: allowed, and never output under `score > threshold`
    from transformers_ramplus import RamPlusProcessor
    import torch

    config = tiny_config(num_tags=2, tag_thresholds=[1.0, 0.5])
    processor = RamPlusProcessor.from_model_config(config)
    tags = processor.post_process_image_tagging(torch.tensor([[30.0, 30.0]]))
    assert [t["label"] for t in tags[0]] == ["tag 1"]
