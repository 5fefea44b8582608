"""transformers-ramplus: RAM++ (Recognize Anything Plus) for Hugging Face transformers."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, AutoProcessor

from .configuration_ram_plus import RamPlusConfig
from .image_processing_ram_plus import RamPlusImageProcessor
from .modeling_ram_plus import RamPlusHeatmapOutput, RamPlusModel, RamPlusOutput, RamPlusPreTrainedModel, asymmetric_loss
from .optimization import optimize_for_inference
from .processing_ram_plus import RamPlusProcessor
from .pipeline_zero_shot_image_tagging import ZeroShotImageTaggingPipeline, register_pipeline
from .tag_sets import TagSet, encode_texts, load_descriptions, save_descriptions
from .hub import DEFAULT_MODEL, install_hooks
from .remote_code import prefer_local_pipelines, save_model_folder, write_remote_code
from .scale import tag_dataset


__version__ = "0.1.0"

AutoConfig.register(RamPlusConfig.model_type, RamPlusConfig, exist_ok=True)
AutoModel.register(RamPlusConfig, RamPlusModel, exist_ok=True)
# pipeline("image-classification", model=DIR): multi-label (sigmoid per tag over id2label), top-k
AutoModelForImageClassification.register(RamPlusConfig, RamPlusModel, exist_ok=True)
AutoImageProcessor.register(RamPlusConfig, image_processor_classes={"pil": RamPlusImageProcessor}, exist_ok=True)
AutoProcessor.register(RamPlusConfig, RamPlusProcessor, exist_ok=True)
register_pipeline()  # pipeline("zero-shot-image-tagging", model=...)
# folders carry custom_pipelines for remote-code users; with the package installed its own pipeline serves the task
prefer_local_pipelines(RamPlusConfig)
# from_pretrained("xinyu1205/recognize-anything-plus-model") and other original-format repos (see hub.py)
install_hooks()

__all__ = [
    "DEFAULT_MODEL",
    "RamPlusConfig",
    "RamPlusHeatmapOutput",
    "RamPlusImageProcessor",
    "RamPlusModel",
    "RamPlusOutput",
    "RamPlusPreTrainedModel",
    "RamPlusProcessor",
    "TagSet",
    "ZeroShotImageTaggingPipeline",
    "encode_texts",
    "load_descriptions",
    "save_descriptions",
    "asymmetric_loss",
    "optimize_for_inference",
    "save_model_folder",
    "tag_dataset",
    "write_remote_code",
]
