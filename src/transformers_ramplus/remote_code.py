# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The one remote-code bundle that every model folder this project writes carries.

A folder written by `ramplus convert`, `ramplus finetune`, `ramplus evaluate --calibrate-output`, `hub_upload` or the
tagging pipeline's `save_pretrained` holds, next to the weights and JSON files, the package's self-contained modules
(configuration, modeling, image processing, processing, the tagging pipeline and whatever they import relatively) and
the `auto_map`/`custom_pipelines` entries that point at them. Where `transformers_ramplus` is not installed,
`trust_remote_code=True` then gives `AutoConfig`, `AutoModel`, `AutoModelForImageClassification`,
`AutoImageProcessor`, `AutoProcessor` and `pipeline("zero-shot-image-tagging")`; where it is installed, the package's
own classes are used and no code from the folder runs.

The file list is not kept by hand: it is the modules of the entry points below plus their relative imports, found the
way transformers finds them when it loads remote code (`get_relative_import_files`), so a module added to the image
processor's imports is shipped automatically. This module only imports the standard library and transformers, so that
it can itself ship in the bundle (the pipeline's `save_pretrained` uses it lazily).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .atomic_io import atomic_file


# auto class -> "module.Class" of the package (module = a file of this package, without ".py")
AUTO_MAP = {
    "AutoConfig": "configuration_ram_plus.RamPlusConfig",
    "AutoModel": "modeling_ram_plus.RamPlusModel",
    "AutoModelForImageClassification": "modeling_ram_plus.RamPlusModel",
    "AutoImageProcessor": "image_processing_ram_plus.RamPlusImageProcessor",
    "AutoProcessor": "processing_ram_plus.RamPlusProcessor",
}
PIPELINE_TASK = "zero-shot-image-tagging"
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_zero_shot_image_tagging.ZeroShotImageTaggingPipeline",
        "pt": ["AutoModel"],
        "tf": [],
        "type": "image",
    }
}
# which JSON file of a saved folder carries which auto_map entries (transformers reads them from there)
_JSON_AUTO_MAP = {
    "config.json": ("AutoConfig", "AutoModel", "AutoModelForImageClassification"),
    "preprocessor_config.json": ("AutoImageProcessor",),
    "processor_config.json": ("AutoProcessor",),
}
_SOURCE_DIR = Path(__file__).resolve().parent


def _entry_modules() -> list[str]:
    modules = [reference.rsplit(".", 1)[0] for reference in AUTO_MAP.values()]
    modules += [task["impl"].rsplit(".", 1)[0] for task in CUSTOM_PIPELINES.values()]
    return list(dict.fromkeys(modules))


def bundle_files(source_dir=None) -> list[Path]:
    """The `.py` files of the bundle: the entry modules and, recursively, the modules they import relatively."""
    from transformers.dynamic_module_utils import get_relative_import_files

    source_dir = Path(source_dir) if source_dir is not None else _SOURCE_DIR
    files: list[Path] = []
    for module in _entry_modules():
        entry = source_dir / f"{module}.py"
        if not entry.is_file():
            raise FileNotFoundError(f"remote-code entry module {entry} does not exist")
        files.append(entry)
        files.extend(Path(f) for f in get_relative_import_files(str(entry)))
    unique = sorted(dict.fromkeys(files), key=lambda p: p.name)
    for file in unique:
        if not file.is_file():
            raise FileNotFoundError(
                f"{file.name} is imported relatively by the remote-code modules but is not a module file of "
                f"{source_dir} (remote code supports sibling modules only, not sub-packages)"
            )
    return unique


def _write_json(path: Path, data: dict) -> None:
    with atomic_file(path) as stream:  # never half-written, honours the umask
        stream.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _auto_map(data: dict, names) -> dict:
    auto_map = dict(data.get("auto_map") or {})
    for name in names:
        # the image processor's entry is keyed by backend (transformers' format for image processors), which also
        # keeps AutoVideoProcessor from deriving a non-existent "RamPlusVideoProcessor" from it
        auto_map[name] = {"pil": AUTO_MAP[name]} if name == "AutoImageProcessor" else AUTO_MAP[name]
    return auto_map


def _code_source(fallback) -> Path:
    """Where the bundle's modules are: this package, or, when this module runs as remote code (transformers copies
    only the modules each loaded class needs), the model folder the code came from."""
    if all((_SOURCE_DIR / f"{module}.py").is_file() for module in _entry_modules()):
        return _SOURCE_DIR
    if fallback is not None and os.path.isdir(fallback):
        if all((Path(fallback) / f"{module}.py").is_file() for module in _entry_modules()):
            return Path(fallback)
    raise FileNotFoundError(
        "the remote-code modules are not all available here (running as remote code from a folder that is no longer "
        "on disk?); save from an environment with transformers_ramplus installed"
    )


def write_remote_code(directory, code_source=None) -> list[Path]:
    """
    Add the remote-code bundle to a saved model folder: copy the bundle's modules and set `auto_map` in
    `config.json`, `preprocessor_config.json` and `processor_config.json` (those present) and `custom_pipelines` in
    `config.json`. Idempotent. Returns the copied files. `code_source`: a folder with the modules, used only when
    this runs as remote code without the package.
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{os.fspath(directory)!r} has no config.json: save the model before its code")
    copied = []
    for source in bundle_files(_code_source(code_source)):
        target = directory / source.name
        shutil.copyfile(source, target)
        copied.append(target)
    for filename, names in _JSON_AUTO_MAP.items():
        path = directory / filename
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
        data["auto_map"] = _auto_map(data, names)
        if filename == "preprocessor_config.json" and (directory / "processor_config.json").is_file():
            data["auto_map"]["AutoProcessor"] = AUTO_MAP["AutoProcessor"]
        if isinstance(data.get("image_processor"), dict):  # processor_config.json nests the image processor's
            data["image_processor"]["auto_map"] = _auto_map(data["image_processor"], ("AutoImageProcessor",))
        if filename == "config.json":
            data["custom_pipelines"] = {**(data.get("custom_pipelines") or {}), **CUSTOM_PIPELINES}
        _write_json(path, data)
    return copied


def save_model_folder(directory, model, processor=None, image_processor=None, tokenizer=None, **save_kwargs) -> Path:
    """
    Write a complete, self-contained model folder: weights and `config.json` (`model.save_pretrained`), the processor
    (`processor_config.json`, `preprocessor_config.json`, the tokenizer when there is one) and the remote-code bundle.

    `processor` defaults to one built from the model's config (its tag names, Chinese names and thresholds) with
    `image_processor` (default: the model's input size) and `tokenizer`.
    """
    from .image_processing_ram_plus import RamPlusImageProcessor
    from .processing_ram_plus import RamPlusProcessor

    directory = Path(directory)
    code_source = _code_source(getattr(model.config, "_name_or_path", None))  # before writing anything
    directory.mkdir(parents=True, exist_ok=True)
    if processor is None:
        if image_processor is None:
            size = model.config.vision_config.image_size
            size = size if isinstance(size, int) else size[0]
            image_processor = RamPlusImageProcessor(size={"height": size, "width": size})
        processor = RamPlusProcessor.from_model_config(model.config, image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(directory, **save_kwargs)
    processor.save_pretrained(directory)
    processor.image_processor.save_pretrained(directory)  # preprocessor_config.json for AutoImageProcessor users
    write_remote_code(directory, code_source)
    return directory


def prefer_local_pipelines(config_class) -> None:
    """
    Make `config.custom_pipelines` (as `transformers.pipeline` reads it) leave out the tasks whose registered pipeline
    class has the same name as the one the folder ships: with this package installed, `pipeline(task, model=DIR)` then
    uses the package's pipeline without `trust_remote_code`. The saved value (`to_dict`, `config.json`) is unchanged.
    """

    def getter(self):
        stored = self.__dict__.get("custom_pipelines")
        if not stored:
            return {}  # a folder saved without the bundle: `pipeline()` takes len() of this
        from transformers.pipelines import PIPELINE_REGISTRY

        local = {}
        for task, options in stored.items():
            registered = PIPELINE_REGISTRY.supported_tasks.get(task)
            impl = registered.get("impl") if registered else None
            if impl is not None and impl.__name__ == str(options.get("impl", "")).rsplit(".", 1)[-1]:
                continue
            local[task] = options
        return local

    def setter(self, value):
        self.__dict__["custom_pipelines"] = value

    config_class.custom_pipelines = property(getter, setter)


__all__ = ["AUTO_MAP", "CUSTOM_PIPELINES", "bundle_files", "prefer_local_pipelines", "save_model_folder", "write_remote_code"]
