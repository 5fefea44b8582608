# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The one remote-code bundle that every model folder this project writes carries.

A folder written by `ramplus convert`, `ramplus finetune`, `ramplus evaluate --calibrate-output`, `hub_upload` or the
tagging pipeline's `save_pretrained` holds, next to the weights and JSON files, the package's self-contained modules
(configuration, modeling, image processing, processing, the tagging pipeline and whatever they import relatively) and
the `auto_map`/`custom_pipelines` entries that point at them. Where `transformers_ramplus` is not installed,
`trust_remote_code=True` then gives `AutoConfig`, `AutoModel`, `AutoModelForImageClassification`,
`AutoImageProcessor`, `AutoProcessor` and `pipeline("zero-shot-image-tagging")`; where it is installed, the package's
own classes are used and no code from the folder runs.

The file list is not kept by hand: it is the entry modules below (a model's folder under `models/` and the pipeline)
plus, recursively, the package modules they import relatively, written flat into the folder with those imports
rewritten to sibling imports (`from ..models.ram_plus.x import` -> `from .x import`), the layout transformers loads
remote code from. Optional parts of the package that the entry modules use (open-set tag sets, fast paths, this
writer) are imported absolutely inside `try` blocks: transformers' import check skips those, and the remote code
runs without them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from transformers.dynamic_module_utils import get_relative_import_files

from ..io.atomic import atomic_file
from .ram_plus.image_processing_ram_plus import RamPlusImageProcessor
from .ram_plus.processing_ram_plus import RamPlusProcessor


# auto class -> "module.Class" in a saved folder (module = a file of the bundle, without ".py")
AUTO_MAP = {
    "AutoConfig": "configuration_ram_plus.RamPlusConfig",
    "AutoModel": "modeling_ram_plus.RamPlusModel",
    "AutoModelForImageClassification": "modeling_ram_plus.RamPlusModel",
    "AutoImageProcessor": "image_processing_ram_plus.RamPlusImageProcessor",
    "AutoProcessor": "processing_ram_plus.RamPlusProcessor",
}
TASK = "zero-shot-image-tagging"  # the pipeline task the package registers and saved folders declare
# transformers' CLIP/SigLIP task: saved folders declare the same pipeline for it (for this model only; the package
# does not register it, so other models keep transformers' own pipeline); it answers in that task's format
CLASSIFICATION_TASK = "zero-shot-image-classification"
CUSTOM_PIPELINES = {
    task: {
        "impl": "pipeline_zero_shot_image_tagging.ZeroShotImageTaggingPipeline",
        "pt": ["AutoModel"],
        "tf": [],
        "type": "image",
    }
    for task in (TASK, CLASSIFICATION_TASK)
}
# which JSON file of a saved folder carries which auto_map entries (transformers reads them from there)
_JSON_AUTO_MAP = {
    "config.json": ("AutoConfig", "AutoModel", "AutoModelForImageClassification", "AutoModelForImageTextToText"),
    "preprocessor_config.json": ("AutoImageProcessor",),
    "processor_config.json": ("AutoProcessor",),
}
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# bundle module -> its file in the package (the folder of a model, and the pipeline under its bundle name)
_ENTRY_FILES = {
    "configuration_ram_plus": "models/ram_plus/configuration_ram_plus.py",
    "modeling_ram_plus": "models/ram_plus/modeling_ram_plus.py",
    "image_processing_ram_plus": "models/ram_plus/image_processing_ram_plus.py",
    "processing_ram_plus": "models/ram_plus/processing_ram_plus.py",
    "pipeline_zero_shot_image_tagging": "pipelines/zero_shot_image_tagging.py",
}
# Tag2Text's folders (`model_type` "tag2text"): its own classes, RAM++'s image processor, the same tagging pipeline
TAG2TEXT_AUTO_MAP = {
    "AutoConfig": "configuration_tag2text.Tag2TextConfig",
    "AutoModel": "modeling_tag2text.Tag2TextForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_tag2text.Tag2TextForConditionalGeneration",
    "AutoImageProcessor": "image_processing_ram_plus.RamPlusImageProcessor",
    "AutoProcessor": "processing_tag2text.Tag2TextProcessor",
}
_TAG2TEXT_ENTRY_FILES = {
    "configuration_tag2text": "models/tag2text/configuration_tag2text.py",
    "modeling_tag2text": "models/tag2text/modeling_tag2text.py",
    "image_processing_ram_plus": "models/ram_plus/image_processing_ram_plus.py",
    "processing_tag2text": "models/tag2text/processing_tag2text.py",
    "pipeline_zero_shot_image_tagging": "pipelines/zero_shot_image_tagging.py",
}
# RAM's folders (`model_type` "ram"): its configuration and model, subclasses of RAM++'s, and RAM++'s other classes
RAM_AUTO_MAP = {
    **AUTO_MAP,
    "AutoConfig": "configuration_ram.RamConfig",
    "AutoModel": "modeling_ram.RamModel",
    "AutoModelForImageClassification": "modeling_ram.RamModel",
}
_RAM_ENTRY_FILES = {
    **_ENTRY_FILES,
    "configuration_ram": "models/ram/configuration_ram.py",
    "modeling_ram": "models/ram/modeling_ram.py",
}
# model_type -> (auto map, entry files) of its bundle
_BUNDLES = {
    "ram_plus": (AUTO_MAP, _ENTRY_FILES),
    "ram": (RAM_AUTO_MAP, _RAM_ENTRY_FILES),
    "tag2text": (TAG2TEXT_AUTO_MAP, _TAG2TEXT_ENTRY_FILES),
}


def _bundle_of(model_type: str | None) -> tuple[dict, dict]:
    if model_type is None:
        model_type = "ram_plus"
    if model_type not in _BUNDLES:
        raise ValueError(f"no remote-code bundle for model_type {model_type!r}; known: {', '.join(_BUNDLES)}")
    return _BUNDLES[model_type]


# a relative import of the package: `from ..models.ram_plus.processing_ram_plus import x` (any number of dots)
_RELATIVE_IMPORT = re.compile(r"^(?P<indent>\s*)from\s+(?P<dots>\.+)(?P<module>[\w.]*)\s+import\s", re.MULTILINE)


def _entry_modules(model_type: str | None = None) -> list[str]:
    modules = [reference.rsplit(".", 1)[0] for reference in _bundle_of(model_type)[0].values()]
    modules += [task["impl"].rsplit(".", 1)[0] for task in CUSTOM_PIPELINES.values()]
    return list(dict.fromkeys(modules))


def _resolve(source: Path, dots: str, module: str, root: Path) -> Path:
    """The file a relative import of `source` names (a module of the package under `root`)."""
    base = source.parent
    for _ in range(len(dots) - 1):
        base = base.parent
    target = base.joinpath(*module.split(".")).with_suffix(".py") if module else base / "__init__.py"
    if not target.is_file() or root not in target.resolve().parents:
        raise FileNotFoundError(f"{source.name} imports {dots}{module}, which is not a module file of {root}")
    return target.resolve()


def _package_bundle(root: Path, model_type: str | None = None) -> dict[str, Path]:
    """bundle module name -> package file: the entry files and, recursively, what they import relatively."""
    entry_files = _bundle_of(model_type)[1]
    flat_names = {(root / path).resolve(): name for name, path in entry_files.items()}
    pending = [(root / entry_files[name]).resolve() for name in _entry_modules(model_type)]
    found: dict[Path, str] = {}
    while pending:
        source = pending.pop()
        if source in found:
            continue
        if not source.is_file():
            raise FileNotFoundError(f"remote-code entry module {source} does not exist")
        found[source] = flat_names.get(source, source.stem)
        for match in _RELATIVE_IMPORT.finditer(source.read_text(encoding="utf-8")):
            pending.append(_resolve(source, match["dots"], match["module"], root))
    bundle: dict[str, Path] = {}
    for source, name in found.items():
        if name in bundle:
            raise ValueError(f"two modules of the remote-code bundle would both be {name}.py: {bundle[name]}, {source}")
        bundle[name] = source
    return bundle


def _flat_bundle(folder: Path, model_type: str | None = None) -> dict[str, Path]:
    """bundle module name -> file of a flat folder (a saved model folder, or remote code run from one)."""

    files: dict[str, Path] = {}
    for module in _entry_modules(model_type):
        entry = folder / f"{module}.py"
        if not entry.is_file():
            raise FileNotFoundError(f"remote-code entry module {entry} does not exist")
        for path in [entry, *map(Path, get_relative_import_files(str(entry)))]:
            if not path.is_file():
                raise FileNotFoundError(f"{path.name} is imported relatively by the remote-code modules but is missing")
            files[path.stem] = path
    return files


def _flattened(source: Path, bundle: dict[str, Path], root: Path) -> str:
    """The text of a package module as a sibling of the bundle: `from ..models.ram_plus.x import` -> `from .x import`."""
    names = {path: name for name, path in bundle.items()}

    def sibling(match) -> str:
        target = _resolve(source, match["dots"], match["module"], root)
        return f"{match['indent']}from .{names[target]} import "

    return _RELATIVE_IMPORT.sub(sibling, source.read_text(encoding="utf-8"))


def bundle_files(source_dir=None, model_type: str | None = None) -> list[Path]:
    """The source files of the bundle: the entry modules and, recursively, the modules they import relatively (from
    the installed package, or from a flat folder `source_dir`)."""
    if source_dir is None:
        bundle = _package_bundle(_PACKAGE_DIR, model_type)
    else:
        bundle = _flat_bundle(Path(source_dir), model_type)
    return sorted(bundle.values(), key=lambda p: p.name)


def bundle_sources(source_dir=None, package_dir=None, model_type: str | None = None) -> dict[str, str]:
    """File name -> text of the bundle as a saved folder holds it (flat: the package's relative imports rewritten
    to sibling imports), from the package (or the package tree `package_dir`) or from a flat folder `source_dir`."""
    if source_dir is None:
        root = Path(package_dir).resolve() if package_dir is not None else _PACKAGE_DIR
        bundle = _package_bundle(root, model_type)
        return {f"{name}.py": _flattened(path, bundle, root) for name, path in bundle.items()}
    return {
        f"{name}.py": path.read_text(encoding="utf-8") for name, path in _flat_bundle(Path(source_dir), model_type).items()
    }


def _write_json(path: Path, data: dict) -> None:
    with atomic_file(path) as stream:  # never half-written, honours the umask
        stream.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _auto_map(data: dict, names, auto_classes: dict = AUTO_MAP) -> dict:
    auto_map = dict(data.get("auto_map") or {})
    for name in names:
        if name not in auto_classes:
            continue
        # the image processor's entry is keyed by backend (transformers' format for image processors), which also
        # keeps AutoVideoProcessor from deriving a non-existent "RamPlusVideoProcessor" from it
        auto_map[name] = {"pil": auto_classes[name]} if name == "AutoImageProcessor" else auto_classes[name]
    return auto_map


def write_remote_code(directory, model_type: str | None = None) -> list[Path]:
    """
    Add the remote-code bundle to a saved model folder: write the bundle's modules (flat) and set `auto_map` in
    `config.json`, `preprocessor_config.json` and `processor_config.json` (those present) and `custom_pipelines` in
    `config.json`. Idempotent. Returns the written files.
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{os.fspath(directory)!r} has no config.json: save the model before its code")
    if model_type is None:  # the folder's own model
        with open(directory / "config.json", encoding="utf-8") as stream:
            model_type = json.load(stream).get("model_type") or "ram_plus"
    auto_classes = _bundle_of(model_type)[0]
    copied = []
    for name, text in bundle_sources(model_type=model_type).items():
        target = directory / name
        with atomic_file(target) as stream:
            stream.write(text)
        copied.append(target)
    for filename, names in _JSON_AUTO_MAP.items():
        path = directory / filename
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
        data["auto_map"] = _auto_map(data, names, auto_classes)
        if filename == "preprocessor_config.json" and (directory / "processor_config.json").is_file():
            data["auto_map"]["AutoProcessor"] = auto_classes["AutoProcessor"]
        if isinstance(data.get("image_processor"), dict):  # processor_config.json nests the image processor's
            data["image_processor"]["auto_map"] = _auto_map(
                data["image_processor"], ("AutoImageProcessor",), auto_classes
            )
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

    directory = Path(directory)
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
    write_remote_code(directory)
    return directory


__all__ = ["AUTO_MAP", "CUSTOM_PIPELINES", "bundle_files", "save_model_folder", "write_remote_code"]
