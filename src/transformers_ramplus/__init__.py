"""transformers-ramplus: RAM++ (Recognize Anything Plus) for Hugging Face transformers."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from .configuration_ram_plus import RamPlusConfig
from .image_processing_ram_plus import RamPlusImageProcessor
from .modeling_ram_plus import RamPlusModel, RamPlusOutput, RamPlusPreTrainedModel, asymmetric_loss
from .optimization import optimize_for_inference
from .processing_ram_plus import RamPlusProcessor
from .pipeline_zero_shot_image_tagging import ZeroShotImageTaggingPipeline, register_pipeline
from .tag_sets import TagSet, encode_texts, load_descriptions, save_descriptions


__version__ = "0.1.0"

AutoConfig.register(RamPlusConfig.model_type, RamPlusConfig, exist_ok=True)
AutoModel.register(RamPlusConfig, RamPlusModel, exist_ok=True)
AutoImageProcessor.register(RamPlusConfig, image_processor_classes={"pil": RamPlusImageProcessor}, exist_ok=True)
AutoProcessor.register(RamPlusConfig, RamPlusProcessor, exist_ok=True)
register_pipeline()  # pipeline("zero-shot-image-tagging", model=...)

__all__ = [
    "RamPlusConfig",
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
]
