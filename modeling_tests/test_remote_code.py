"""The one remote-code bundle: every writer ships the same code and auto_map, and it loads without the package."""

import json
import textwrap
from pathlib import Path

import torch
from transformers import pipeline

from conftest import IMAGES_DIR, REFERENCE_IMAGES, run_without_package, tiny_model

IMAGES = [str(p) for p in REFERENCE_IMAGES]


def bundle_of(folder):
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    maps = {
        name: json.loads((folder / name).read_text()).get("auto_map")
        for name in ("config.json", "preprocessor_config.json", "processor_config.json")
    }
    code = {p.name: p.read_text() for p in folder.glob("*.py")}
    return code, maps, config.get("custom_pipelines")


def test_bundle_is_derived_from_the_modules_and_their_relative_imports(tmp_path):
    import transformers_ramplus
    from transformers.dynamic_module_utils import get_imports
    from transformers_ramplus.models import remote_code

    sources = remote_code.bundle_sources()
    # the entry points and what they import relatively; nothing the package's other tools need
    assert set(sources) == {"configuration_ram_plus.py", "modeling_ram_plus.py", "image_processing_ram_plus.py",
                            "processing_ram_plus.py", "pipeline_zero_shot_image_tagging.py"}
    assert sum(text.count("\n") for text in sources.values()) < 3000
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    for name in sources:
        # flat: relative imports name siblings only; what transformers requires to be installed is torch, transformers
        # and their dependencies (the package's optional parts are imported inside try blocks, which it skips)
        for line in sources[name].splitlines():
            if line.lstrip().startswith("from ."):
                assert line.split()[1][1:] + ".py" in sources, (name, line)
        assert "transformers_ramplus" not in get_imports(str(tmp_path / name)), name
    # the modeling file imports only its configuration (and transformers/torch)
    from transformers.dynamic_module_utils import get_relative_import_files

    assert {Path(p).name for p in get_relative_import_files(str(tmp_path / "modeling_ram_plus.py"))} == {
        "configuration_ram_plus.py"
    }
    # a package module that an entry point starts importing is shipped (flattened) without touching any list
    package = Path(transformers_ramplus.__file__).parent
    fake = tmp_path / "pkg"
    for path in remote_code.bundle_files():
        target = fake / path.relative_to(package)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    image_processing = fake / "models/ram_plus/image_processing_ram_plus.py"
    image_processing.write_text(image_processing.read_text() + "\nfrom ...io.dicom_reader import read_dicom\n")
    (fake / "io").mkdir()
    (fake / "io/dicom_reader.py").write_text("from .helpers import x\n\ndef read_dicom(path):\n    return x\n")
    (fake / "io/helpers.py").write_text("x = 1\n")
    (fake / "io/optimize.py").write_text("# not imported by any entry point\n")
    derived = remote_code.bundle_sources(package_dir=fake)
    assert set(derived) == set(sources) | {"dicom_reader.py", "helpers.py"}
    assert "from .dicom_reader import read_dicom" in derived["image_processing_ram_plus.py"]
    assert "from .helpers import x" in derived["dicom_reader.py"]


def test_every_writer_ships_the_same_bundle(tmp_path, converted_tiny):
    from transformers_ramplus import save_model_folder

    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
    tagger.save_pretrained(tmp_path / "from_pipeline")
    save_model_folder(tmp_path / "from_function", tagger.model)  # finetune / evaluate --calibrate-output use this
    reference = bundle_of(converted_tiny)
    assert set(reference[0]) >= {"modeling_ram_plus.py", "pipeline_zero_shot_image_tagging.py"}
    assert reference[1]["config.json"]["AutoModelForImageClassification"] == "modeling_ram_plus.RamPlusModel"
    assert reference[1]["processor_config.json"] == {"AutoProcessor": "processing_ram_plus.RamPlusProcessor"}
    assert reference[1]["preprocessor_config.json"]["AutoImageProcessor"] == {
        "pil": "image_processing_ram_plus.RamPlusImageProcessor"
    }
    for folder in ("from_pipeline", "from_function"):
        assert bundle_of(tmp_path / folder) == reference, folder


def test_converted_folder_loads_as_remote_code_without_the_package(tmp_path, converted_tiny):
    """AutoConfig/AutoModel/AutoImageProcessor/AutoProcessor and both pipelines, same scores as the package."""
    folder = str(converted_tiny)
    # the package, no trust_remote_code; in fp32 as the bundle computes (`precision="auto"` is bf16 on a CPU with
    # native bf16, whose scores differ by ~1e-3)
    tagger = pipeline("zero-shot-image-tagging", model=folder, device="cpu", precision="fp32")
    assert type(tagger).__module__.startswith("transformers_ramplus")
    expected = {
        "tagging": tagger(IMAGES, threshold=0.0),
        "classification": pipeline("image-classification", model=folder, device="cpu")(IMAGES, top_k=4),
    }
    from transformers import AutoModel

    with torch.no_grad():  # the reference model (the pipeline runs the optimized one; they agree to ~1e-5)
        logits = AutoModel.from_pretrained(folder)(**tagger.image_processor(IMAGES, return_tensors="pt")).logits
    expected["logits"] = logits.tolist()
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    # the package's image-classification scores are sigmoid(logits) over id2label, top-k
    top = torch.sigmoid(logits[0]).topk(4)
    assert [t["label"] for t in expected["classification"][0]] == [
        tagger.model.config.id2label[i] for i in top.indices.tolist()
    ]
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["transformers_ramplus"] = None  # importing the package now fails
        import torch
        from transformers import (AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification,
                                  AutoProcessor, pipeline)
        folder = {folder!r}
        expected = json.load(open({str(tmp_path / 'expected.json')!r}))
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        head = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
        image_processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        for obj in (config, model, head, image_processor, processor):
            assert "transformers_ramplus" not in type(obj).__module__, type(obj).__module__
        assert type(processor).__name__ == "RamPlusProcessor", type(processor)
        with torch.no_grad():
            logits = model(**processor(images={IMAGES!r})).logits
        torch.testing.assert_close(logits, torch.tensor(expected["logits"]), atol=1e-5, rtol=0)
        tags = processor.post_process_image_tagging(logits, threshold=0.0)
        assert [t["label"] for t in tags[0]][:3] == [t["label"] for t in expected["tagging"][0]][:3]
        for task, kwargs in (("tagging", dict(threshold=0.0)), ("classification", dict(top_k=4))):
            name = "zero-shot-image-tagging" if task == "tagging" else "image-classification"
            tagger = pipeline(name, model=folder, trust_remote_code=True, device="cpu")
            got = tagger({IMAGES!r}, **kwargs)
            for a, b in zip(got, expected[task]):
                assert [t["label"] for t in a] == [t["label"] for t in b], (task, a, b)
                assert max(abs(x["score"] - y["score"]) for x, y in zip(a, b)) < 1e-5, task
        # the remote pipeline re-saves the same bundle, still without the package
        pipeline("zero-shot-image-tagging", model=folder, trust_remote_code=True).save_pretrained("resaved")
        import pathlib
        assert sorted(p.name for p in pathlib.Path("resaved").glob("*.py")) == sorted(  # noqa
            p.name for p in pathlib.Path(folder).glob("*.py")
        ), (sorted(pathlib.Path("resaved").glob("*.py")), sorted(pathlib.Path(folder).glob("*.py")))
        print("remote-ok")
        """
    )
    result = run_without_package(script, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remote-ok" in result.stdout


def test_saved_model_with_register_for_auto_class_still_loads(tmp_path):
    """transformers' own mechanism (model.register_for_auto_class) keeps working for the modeling file alone."""
    model = tiny_model()
    model.config.register_for_auto_class()
    model.register_for_auto_class("AutoModel")
    model.save_pretrained(tmp_path / "remote")
    pixel_values = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.save(pixel_values, tmp_path / "pixels.pt")
    with torch.no_grad():
        torch.save(model(pixel_values=pixel_values).logits, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["transformers_ramplus"] = None
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / 'remote')!r}, trust_remote_code=True).eval()
        assert "transformers_ramplus" not in type(model).__module__
        with torch.no_grad():
            logits = model(pixel_values=torch.load({str(tmp_path / 'pixels.pt')!r})).logits
        torch.testing.assert_close(logits, torch.load({str(tmp_path / 'expected.pt')!r}))
        print("remote-ok")
        """
    )
    result = run_without_package(script, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_packages_optional_parts_are_found_where_it_is_installed():
    """The bundle modules import the package's optional parts inside try blocks; an import circle would make them
    silently None (the remote-code fallback) while the package is installed."""
    from transformers_ramplus import TagSet, enable_fast_inference, save_model_folder
    from transformers_ramplus.io import dicom
    from transformers_ramplus.models.ram_plus import image_processing_ram_plus
    from transformers_ramplus.pipelines import zero_shot_image_tagging

    assert zero_shot_image_tagging.TagSet is TagSet
    assert zero_shot_image_tagging.enable_fast_inference is enable_fast_inference
    assert zero_shot_image_tagging.save_model_folder is save_model_folder
    assert image_processing_ram_plus.read_dicom is dicom.read_dicom
