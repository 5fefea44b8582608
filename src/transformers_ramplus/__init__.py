"""transformers-ramplus: the Recognize Anything family (RAM++, RAM) for Hugging Face transformers.

Importing the package registers its classes with transformers' public registration APIs (`AutoConfig.register`,
`AutoModel.register`, `AutoImageProcessor.register`, `AutoProcessor.register`, `PIPELINE_REGISTRY.register_pipeline`)
and lets `from_pretrained` load the authors' original-format repositories by their exact ids (`hub.ORIGINAL_REPOS`).
Loading any other model is unchanged.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForImageTextToText,
    AutoProcessor,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .hub import DEFAULT_MODEL, add_original_repo_aliases
from .inference.fast_paths import enable_fast_inference, optimize_for_inference  # the latter: the earlier name
from .inference.tag_dataset import tag_dataset
from .models.ram.configuration_ram import RamConfig
from .models.ram.modeling_ram import RamModel
from .models.ram_plus.configuration_ram_plus import RamPlusConfig
from .models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor
from .models.ram_plus.modeling_ram_plus import (
    RamPlusHeatmapOutput,
    RamPlusModel,
    RamPlusOutput,
    RamPlusPreTrainedModel,
    asymmetric_loss,
)
from .models.ram_plus.processing_ram_plus import RamPlusProcessor
from .models.remote_code import TASK, save_model_folder, write_remote_code
from .models.tag2text.configuration_tag2text import Tag2TextConfig
from .models.tag2text.configuration_tag2text_text import Tag2TextTextConfig
from .models.tag2text.modeling_tag2text import (
    Tag2TextForConditionalGeneration,
    Tag2TextOutput,
    Tag2TextPreTrainedModel,
)
from .models.tag2text.processing_tag2text import Tag2TextProcessor
from .pipelines.zero_shot_image_tagging import ZeroShotImageTaggingPipeline
from .tags.descriptions import load_descriptions, save_descriptions
from .tags.encoding import encode_texts
from .tags.tag_set import TagSet


__version__ = "0.1.0"

AutoConfig.register(RamPlusConfig.model_type, RamPlusConfig, exist_ok=True)
AutoModel.register(RamPlusConfig, RamPlusModel, exist_ok=True)
# pipeline("image-classification", model=DIR): multi-label (sigmoid per tag over id2label), top-k
AutoModelForImageClassification.register(RamPlusConfig, RamPlusModel, exist_ok=True)
AutoImageProcessor.register(RamPlusConfig, image_processor_classes={"pil": RamPlusImageProcessor}, exist_ok=True)
AutoProcessor.register(RamPlusConfig, RamPlusProcessor, exist_ok=True)
# RAM: its own model_type, sharing RAM++'s image processor, processor and pipeline
AutoConfig.register(RamConfig.model_type, RamConfig, exist_ok=True)
AutoModel.register(RamConfig, RamModel, exist_ok=True)
AutoModelForImageClassification.register(RamConfig, RamModel, exist_ok=True)
AutoImageProcessor.register(RamConfig, image_processor_classes={"pil": RamPlusImageProcessor}, exist_ok=True)
AutoProcessor.register(RamConfig, RamPlusProcessor, exist_ok=True)
# Tag2Text: tags + captions; pipeline("image-to-text" / "image-text-to-text", model=DIR) through
# AutoModelForImageTextToText, pipeline("zero-shot-image-tagging", model=DIR) through AutoModel
AutoConfig.register(Tag2TextConfig.model_type, Tag2TextConfig, exist_ok=True)
AutoModel.register(Tag2TextConfig, Tag2TextForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(Tag2TextConfig, Tag2TextForConditionalGeneration, exist_ok=True)
AutoImageProcessor.register(Tag2TextConfig, image_processor_classes={"pil": RamPlusImageProcessor}, exist_ok=True)
AutoProcessor.register(Tag2TextConfig, Tag2TextProcessor, exist_ok=True)
# pipeline("zero-shot-image-tagging", model=...); without model=, the authors' release (converted on first use)
PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=ZeroShotImageTaggingPipeline, pt_model=AutoModel, default={"model": (DEFAULT_MODEL, "main")},
    type="image",
)
# from_pretrained("xinyu1205/recognize-anything-plus-model"): the exact ids of hub.ORIGINAL_REPOS, nothing else
add_original_repo_aliases(
    AutoConfig, AutoModel, AutoModelForImageClassification, AutoModelForImageTextToText, AutoImageProcessor, AutoProcessor
)
add_original_repo_aliases(
    RamPlusConfig,
    RamPlusPreTrainedModel,
    RamPlusImageProcessor,
    RamPlusProcessor,
    Tag2TextConfig,
    Tag2TextPreTrainedModel,
    Tag2TextProcessor,
    fail_fast=True,
)

__all__ = [
    "DEFAULT_MODEL",
    "RamConfig",
    "RamModel",
    "RamPlusConfig",
    "RamPlusHeatmapOutput",
    "RamPlusImageProcessor",
    "RamPlusModel",
    "RamPlusOutput",
    "RamPlusPreTrainedModel",
    "RamPlusProcessor",
    "Tag2TextConfig",
    "Tag2TextForConditionalGeneration",
    "Tag2TextOutput",
    "Tag2TextProcessor",
    "Tag2TextTextConfig",
    "TagSet",
    "ZeroShotImageTaggingPipeline",
    "enable_fast_inference",
    "encode_texts",
    "load_descriptions",
    "save_descriptions",
    "asymmetric_loss",
    "optimize_for_inference",
    "save_model_folder",
    "tag_dataset",
    "write_remote_code",
]
