# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tag2Text ("Tag2Text: Guiding Vision-Language Model via Image Tagging") model configuration."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import SwinConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec
from transformers.pipelines import PIPELINE_REGISTRY

from ..ram_plus.configuration_ram_plus import SWIN_B_384, validate_threshold, validate_thresholds
from .configuration_tag2text_text import Tag2TextTextConfig


# the released model's decision (SPEC section 9): 0.68 for all tags, 0.7 for "person", "man", "woman"
DEFAULT_THRESHOLD = 0.68
RELEASED_THRESHOLD_OVERRIDES = {2701: 0.7, 2828: 0.7, 1167: 0.7}
# "quarter", "back", "two", "three", "four", "five", "one": dropped after thresholding because they disturb captions
RELEASED_DELETE_TAG_INDEX = [127, 2961, 3351, 3265, 3338, 3355, 3359]
RELEASED_NUM_TAGS = 3429


@strict
class Tag2TextConfig(PreTrainedConfig):
    r"""
    Configuration of a [`Tag2TextForConditionalGeneration`]: a Swin image encoder, a group-wise tagging head over a
    learned embedding per tag, and the BERT tag encoder + caption decoder of [`Tag2TextTextConfig`].

    `Tag2TextConfig()` has the geometry of the released `tag2text_swin_14m` (Swin-B/384, 1024-wide image tokens with
    the mean token first, no image projection; tagging decoder of 2 layers and 4 heads sharing the weights of the tag
    encoder's lowest 2 layers; BERT-base text side) and a placeholder vocabulary of `num_labels` tags; a conversion
    sets the 3429 tags.

    Args:
        vision_config (`dict` or `SwinConfig`, *optional*): the image encoder (default Swin-B/384).
        text_config (`dict` or `Tag2TextTextConfig`, *optional*): the tag encoder and caption decoder. Its
            `encoder_hidden_size` must equal the image token width.
        tagging_num_attention_heads (`int`, defaults to 4): heads of the tagging decoder's cross-attention.
        tagging_num_hidden_layers (`int`, defaults to 2): tagging decoder layers (the tag encoder's lowest ones).
        tag_thresholds (`list[float]`, *optional*): per-tag decision thresholds; `None`: `default_threshold` for all.
        default_threshold (`float`, defaults to 0.68).
        delete_tag_index (`list[int]`, *optional*): tags never output (nor used for captions) after thresholding.
        tag_token_ids (`list[list[int]]`, *optional*): the word-piece ids of every tag name (the tokenizer's, without
            special tokens), so that predicted tags become tag-encoder input without a tokenizer.
        tag_separator_token_id (`int`, *optional*): the id of `"|"`, which joins the tags of the tag text.
        prompt_token_ids (`list[int]`, *optional*): the tokenized caption prompt without `[CLS]`/`[SEP]`.
        tag_loss_gamma_neg / tag_loss_gamma_pos / tag_loss_clip / asl_eps: the asymmetric tagging loss (7 / 0 / 0.05
            / 1e-8).
        tag_loss_weight / caption_loss_weight (`float`, defaults to 1.0): weights of the two training losses.
    """

    model_type = "tag2text"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(SwinConfig, init_kwargs=dict(SWIN_B_384)),
        "text_config": SubConfigSpec(Tag2TextTextConfig),
    }

    vision_config: dict | SwinConfig | None = None
    text_config: dict | Tag2TextTextConfig | None = None
    tagging_num_attention_heads: int = 4
    tagging_num_hidden_layers: int = 2
    tag_thresholds: list[float | int] | None = None
    default_threshold: float | int = DEFAULT_THRESHOLD
    delete_tag_index: list[int] | None = None
    tag_token_ids: list[list[int]] | None = None
    tag_separator_token_id: int | None = None
    prompt_token_ids: list[int] | None = None
    tag_loss_gamma_neg: float | int = 7.0
    tag_loss_gamma_pos: float | int = 0.0
    tag_loss_clip: float | int | None = 0.05
    asl_eps: float = 1e-8
    tag_loss_weight: float | int = 1.0
    caption_loss_weight: float | int = 1.0
    initializer_range: float = 0.02
    # the caption decoder's output layer is its word embeddings
    tie_word_embeddings: bool = True
    problem_type: str | None = "multi_label_classification"

    def __post_init__(self, **kwargs):
        for name in ("vision_config", "text_config"):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, {k: v for k, v in value.items() if k != "model_type"})
        super().__post_init__(**kwargs)
        if self.label2id is None or len(self.label2id) != len(self.id2label):
            self.label2id = {name: index for index, name in self.id2label.items()}
        self.label2id = {name: int(index) for name, index in self.label2id.items()}
        self._validate_tag2text()

    # ------------------------------------------------------------------ validation
    def _validate_tag2text(self) -> None:
        vc, tc = self.vision_config, self.text_config
        if not isinstance(vc, SwinConfig):
            raise TypeError(f"`vision_config` must be a dict or a SwinConfig, got {type(vc).__name__}")
        if not isinstance(tc, Tag2TextTextConfig):
            raise TypeError(f"`text_config` must be a dict or a Tag2TextTextConfig, got {type(tc).__name__}")
        width = vc.embed_dim * 2 ** (len(vc.depths) - 1)
        if tc.encoder_hidden_size != width:
            raise ValueError(
                f"`text_config.encoder_hidden_size` ({tc.encoder_hidden_size}) must equal the image token width {width}"
            )
        for name in ("tagging_num_attention_heads", "tagging_num_hidden_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if tc.hidden_size % self.tagging_num_attention_heads:
            raise ValueError(
                f"`text_config.hidden_size` ({tc.hidden_size}) must be divisible by `tagging_num_attention_heads` "
                f"({self.tagging_num_attention_heads})"
            )
        if self.tagging_num_hidden_layers > tc.num_hidden_layers:
            raise ValueError(
                f"the tagging decoder reuses the tag encoder's lowest layers: `tagging_num_hidden_layers` "
                f"({self.tagging_num_hidden_layers}) must be at most `text_config.num_hidden_layers` ({tc.num_hidden_layers})"
            )
        num_tags = self.num_tags
        validate_threshold(self.default_threshold, "default_threshold")
        if self.tag_thresholds is not None:
            self.tag_thresholds = validate_thresholds(self.tag_thresholds, num_tags=num_tags, name="tag_thresholds")
        for index in self.delete_tag_index or []:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_tags:
                raise ValueError(f"`delete_tag_index` holds {index!r}, not a tag index below {num_tags}")
        if self.tag_token_ids is not None and len(self.tag_token_ids) != num_tags:
            raise ValueError(f"`tag_token_ids` has {len(self.tag_token_ids)} entries for {num_tags} tags")

    # ------------------------------------------------------------------ custom pipelines
    @property
    def custom_pipelines(self) -> dict:
        """The folder's `custom_pipelines` less the tasks whose registered pipeline class has the name of the one the
        folder ships (as [`RamPlusConfig.custom_pipelines`]): where this package is installed, `pipeline(task,
        model=DIR)` uses its pipeline without `trust_remote_code`."""
        stored = self.__dict__.get("custom_pipelines")
        if not stored:
            return {}
        local = {}
        for task, options in stored.items():
            registered = PIPELINE_REGISTRY.supported_tasks.get(task)
            impl = registered.get("impl") if registered else None
            if impl is not None and impl.__name__ == str(options.get("impl", "")).rsplit(".", 1)[-1]:
                continue
            local[task] = options
        return local

    @custom_pipelines.setter
    def custom_pipelines(self, value) -> None:
        self.__dict__["custom_pipelines"] = value

    # ------------------------------------------------------------------ vocabulary
    @property
    def num_tags(self) -> int:
        return len(self.id2label)

    @property
    def tag_names(self) -> list[str]:
        return [self.id2label[i] for i in range(self.num_tags)]

    # RAM++'s tagging tools read these; Tag2Text has no Chinese names and no per-tag description counts
    tag_names_chinese = None

    def thresholds(self) -> list[float]:
        """The per-tag decision thresholds."""
        if self.tag_thresholds is not None:
            return [float(t) for t in self.tag_thresholds]
        return [float(self.default_threshold)] * self.num_tags

    @property
    def vocabulary(self) -> dict:
        return {"names": self.tag_names, "thresholds": self.thresholds(), "delete_tag_index": self.delete_tag_index}

    def set_thresholds(self, thresholds, tag_indices=None) -> None:
        """Replace all thresholds, or those of `tag_indices`."""
        current = self.thresholds()
        if tag_indices is None:
            current = validate_thresholds(thresholds, num_tags=self.num_tags)
        else:
            values = validate_thresholds(thresholds, num_tags=len(tag_indices))
            for index, value in zip(tag_indices, values):
                current[int(index)] = value
        self.tag_thresholds = current


__all__ = ["Tag2TextConfig"]
