"""Loading by Hub id against the local Hub stand-in on 127.0.0.1: converted repositories, and the authors' release
(an original .pth, no config.json), converted once and cached, then loaded offline."""

import json
import shutil
import subprocess
import sys
import textwrap
import time

import torch

from conftest import IMAGES_DIR, TINY_DIR
from local_hub import LocalHub, hub_env

RELEASE = "xinyu1205/recognize-anything-plus-model"
IMAGE = str(IMAGES_DIR / "demo2.jpg")


def run(script, env, timeout=300):
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env)


def test_model_and_processor_load_by_hub_id(tmp_path, converted_tiny, reference_outputs):
    torch.save(reference_outputs["pixel_values"], tmp_path / "pixels.pt")
    torch.save(reference_outputs["logits"], tmp_path / "logits.pt")
    script = textwrap.dedent(
        f"""
        import torch
        import transformers_ramplus
        import transformers_ramplus.hub as hub
        from transformers import AutoModel, AutoProcessor
        looked_up = []
        original_locate = hub._locate
        hub._locate = lambda *args: looked_up.append(args) or original_locate(*args)
        model = AutoModel.from_pretrained("someone/ram-plus-tiny").eval()
        processor = AutoProcessor.from_pretrained("someone/ram-plus-tiny")
        assert processor.tokenizer is None and len(processor.tag_names) == 37
        AutoModel.from_pretrained({str(converted_tiny)!r})
        assert looked_up == [], looked_up  # the original-format hook never runs for repositories that load
        with torch.no_grad():
            logits = model(pixel_values=torch.load({str(tmp_path / 'pixels.pt')!r})).logits
        torch.testing.assert_close(logits, torch.load({str(tmp_path / 'logits.pt')!r}), atol=1e-4, rtol=0)
        try:
            AutoModel.from_pretrained("someone/does-not-exist")
        except OSError as error:
            print("missing-repo-error-ok")
        print("hub-ok")
        """
    )
    with LocalHub() as hub:
        hub.add_repo("someone/ram-plus-tiny", converted_tiny)
        result = run(script, hub_env(hub, tmp_path / "hf"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hub-ok" in result.stdout and "missing-repo-error-ok" in result.stdout
    assert any("/someone/ram-plus-tiny/resolve/" in r and r.endswith("model.safetensors") for r in hub.requests)
    assert "converted" not in result.stderr  # a transformers repository is loaded as is
    # the Hub is gone now (connection refused, no HF_HUB_OFFLINE): `ramplus tag` falls back to the cached snapshot
    tagged = run(
        "from transformers_ramplus.cli.main import main\n"
        f"raise SystemExit(main(['tag', {IMAGE!r}, '--model', 'someone/ram-plus-tiny', '--no-progress']))",
        hub_env(hub, tmp_path / "hf"),
    )
    assert tagged.returncode == 0 and tagged.stdout.startswith(IMAGE), tagged.stdout + tagged.stderr


def test_authors_release_by_id_converts_once_then_loads_offline(tmp_path, reference_outputs):
    """The first load converts (golden logits to 1e-4) and caches; the second works with HF_HUB_OFFLINE=1."""
    torch.save(reference_outputs["pixel_values"], tmp_path / "pixels.pt")
    torch.save(reference_outputs["logits"], tmp_path / "logits.pt")
    neither = tmp_path / "neither"
    neither.mkdir()
    (neither / "README.md").write_text("# not a model\n")
    (neither / "weights.npz").write_bytes(b"\0" * 10)
    pth_only = tmp_path / "pth_only"
    pth_only.mkdir()
    shutil.copy(TINY_DIR / "ram_plus_original.pth", pth_only / "model.pth")
    common = textwrap.dedent(
        f"""
        import json, torch
        import transformers_ramplus
        from transformers import AutoImageProcessor, AutoModel, AutoProcessor, pipeline
        from transformers_ramplus import RamPlusModel
        from transformers_ramplus.cli.main import main
        ID = {RELEASE!r}
        pixels = torch.load({str(tmp_path / 'pixels.pt')!r})
        golden = torch.load({str(tmp_path / 'logits.pt')!r})

        def check(model):
            with torch.no_grad():
                logits = model.eval()(pixel_values=pixels).logits
            torch.testing.assert_close(logits, golden, atol=1e-4, rtol=0)
            return logits
        """
    )
    first = common + textwrap.dedent(
        f"""
        logits = check(AutoModel.from_pretrained(ID))
        check(RamPlusModel.from_pretrained(ID))
        processor = AutoProcessor.from_pretrained(ID)
        assert type(processor).__name__ == "RamPlusProcessor" and len(processor.tag_names) == 37
        assert type(AutoImageProcessor.from_pretrained(ID)).__name__ == "RamPlusImageProcessor"
        expected = processor.post_process_image_tagging(logits)[1]
        tags = pipeline("zero-shot-image-tagging", model=ID)({IMAGE!r})  # demo2.jpg is the second golden image
        assert [t["label"] for t in tags] == [t["label"] for t in expected], (tags, expected)
        assert pipeline("zero-shot-image-tagging")({IMAGE!r}) == tags  # the default model is the release
        # cache_dir is honoured: a second cache gets its own download and conversion
        model = AutoModel.from_pretrained(ID, cache_dir={str(tmp_path / 'other_cache')!r})
        assert model.name_or_path.startswith({str(tmp_path / 'other_cache')!r}), model.name_or_path
        assert main(["convert", ID, {str(tmp_path / 'by_id')!r}]) == 0
        check(AutoModel.from_pretrained({str(tmp_path / 'by_id')!r}))
        assert main(["convert", "someone/neither", {str(tmp_path / 'neither_out')!r}]) == 2
        assert main(["convert", "someone/pth-only", {str(tmp_path / 'pth_only_out')!r}]) == 2
        try:
            AutoModel.from_pretrained("someone/neither")
            raise SystemExit("loaded a repository without a model")
        except (OSError, ValueError) as error:  # transformers' own error, untouched
            assert "config.json" in str(error), error
        print("first-ok")
        """
    )
    offline = common + textwrap.dedent(
        f"""
        check(AutoModel.from_pretrained(ID))
        # a cache that saw only one from_pretrained call (nothing but the conversion's own downloads)
        check(AutoModel.from_pretrained(ID, cache_dir={str(tmp_path / 'other_cache')!r}))
        assert pipeline("zero-shot-image-tagging")({IMAGE!r})
        assert main(["tag", {IMAGE!r}, "--output", {str(tmp_path / 'tags.jsonl')!r}, "--no-progress"]) == 0
        print("offline-ok")
        """
    )
    home = tmp_path / "hf"
    with LocalHub() as hub:
        hub.add_repo(RELEASE, TINY_DIR)  # the tiny golden checkpoint with its 37-tag files stands in for the release
        hub.add_repo("someone/neither", neither)
        hub.add_repo("someone/pth-only", pth_only)
        env = hub_env(hub, home)
        result = run(first, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "first-ok" in result.stdout
    # one log line for the conversion of each cache, nothing on the later loads of the same process
    assert result.stderr.count("to a transformers model once; cached in") == 2, result.stderr
    assert "neither a transformers model (no config.json) nor an original RAM++ checkpoint" in result.stderr
    assert "README.md, weights.npz" in result.stderr
    assert "not a multiple of the 4585 tags" in result.stderr  # no tag files in the repository: the bundled ones
    converted = list((home / "hub" / "models--xinyu1205--recognize-anything-plus-model" / "ramplus-converted").glob("*/*"))
    assert len([p for p in converted if p.is_dir()]) == 1
    assert (tmp_path / "by_id" / "modeling_ram_plus.py").is_file()

    env = {**env, "HF_HUB_OFFLINE": "1"}  # and the Hub is gone
    result = run(offline, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "offline-ok" in result.stdout and "once; cached in" not in result.stderr
    records = [json.loads(line) for line in (tmp_path / "tags.jsonl").read_text().splitlines()]
    assert records[0]["path"] == IMAGE and records[0]["tags"]

    # the cache stays a valid Hugging Face cache
    from huggingface_hub import scan_cache_dir

    report = scan_cache_dir(home / "hub")
    assert not [w for w in report.warnings if "xinyu1205" in str(w)], report.warnings
    assert RELEASE in {repo.repo_id for repo in report.repos}


def test_unknown_name_fails_fast_naming_folder_hub_and_offline_mode(tmp_path):
    """Hub unreachable (nothing listens on the endpoint): no 30-50 s of retries, a message naming both readings."""
    with LocalHub() as hub:
        env = hub_env(hub, tmp_path / "hf")
    script = textwrap.dedent(
        f"""
        import time
        from transformers_ramplus.cli.main import main
        for name in ("someone/typo-model", "no-such-folder"):
            start = time.monotonic()
            assert main(["tag", {IMAGE!r}, "--model", name]) == 2
            print("seconds", time.monotonic() - start)
        assert main(["tag", {IMAGE!r}, "--model", "./no/such/folder"]) == 2
        """
    )
    result = run(script, env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    seconds = [float(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("seconds")]
    assert len(seconds) == 2 and max(seconds) < 10, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("ramplus tag: error")]
    assert len(errors) == 3, result.stderr
    for line in errors[:2]:
        assert "not a local folder" in line and "Hub" in line and "HF_HUB_OFFLINE" in line, line
    assert "neither a local folder" in errors[2]
    assert "Retrying" not in result.stderr


def test_package_classes_fail_fast_when_the_hub_is_unreachable(tmp_path):
    """The package's own `from_pretrained` with an id that is not cached, Hub unreachable: one look-up, then an
    error naming the folder reading, the Hub and offline mode (no retries)."""
    with LocalHub() as hub:
        env = hub_env(hub, tmp_path / "hf")
    script = textwrap.dedent(
        """
        import time
        from transformers_ramplus import RamPlusConfig, RamPlusModel, RamPlusProcessor
        from transformers_ramplus.hub import HubUnreachableError
        for cls in (RamPlusConfig, RamPlusModel, RamPlusProcessor):
            start = time.monotonic()
            try:
                cls.from_pretrained("someone/typo-model")
            except HubUnreachableError as error:
                assert "not a local folder" in str(error) and "HF_HUB_OFFLINE" in str(error), error
                print("seconds", time.monotonic() - start)
        """
    )
    result = run(script, env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    seconds = [float(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("seconds")]
    assert len(seconds) == 3 and max(seconds) < 5, result.stdout
    assert "Retrying" not in result.stderr


def _tiny_vit(folder):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8, image_size=8,
                       patch_size=4)
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 8, "width": 8}).save_pretrained(folder)


def test_importing_the_package_leaves_other_models_alone(tmp_path):
    """A tiny ViT, a missing repository and a repository without config.json, loaded through the Auto classes with
    and without the package: the same Hub requests, the same results and errors."""
    _tiny_vit(tmp_path / "vit")
    neither = tmp_path / "neither"
    neither.mkdir()
    (neither / "model.pth").write_bytes(b"\0" * 10)
    script = textwrap.dedent(
        """
        import sys
        if sys.argv[1] == "with":
            import transformers_ramplus  # noqa: F401
        from transformers import AutoConfig, AutoImageProcessor, AutoModel
        print(type(AutoModel.from_pretrained("someone/tiny-vit")).__name__)
        print(type(AutoImageProcessor.from_pretrained("someone/tiny-vit")).__name__)
        for name in ("someone/does-not-exist", "someone/pth-only"):
            try:
                AutoConfig.from_pretrained(name)
            except Exception as error:
                print(type(error).__name__, str(error).splitlines()[0])
        """
    )
    seen = {}
    for mode in ("without", "with"):
        with LocalHub() as hub:
            hub.add_repo("someone/tiny-vit", tmp_path / "vit")
            hub.add_repo("someone/pth-only", neither)
            env = hub_env(hub, tmp_path / f"hf-{mode}")
            result = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=120,
                                    env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            seen[mode] = (result.stdout.replace(f"hf-{mode}", "hf"), list(hub.requests))
    assert seen["with"] == seen["without"]
    assert seen["with"][0].splitlines()[0] == "ViTModel" and "ViTImageProcessor" in seen["with"][0]
    assert any("tiny-vit" in request for request in seen["with"][1])


def test_repository_shapes_are_told_apart():
    import pytest

    from transformers_ramplus.hub import UnsupportedRepositoryError, _checkpoint_name
    from transformers_ramplus.io.repo_ids import looks_like_repo_id

    from transformers_ramplus.hub import DEFAULT_MODEL
    from transformers.pipelines import PIPELINE_REGISTRY

    assert DEFAULT_MODEL == RELEASE == PIPELINE_REGISTRY.supported_tasks["zero-shot-image-tagging"]["default"]["model"][0]  # the CLI and the pipeline agree
    assert looks_like_repo_id(RELEASE) and looks_like_repo_id("gpt2")
    assert not looks_like_repo_id("./models/x") and not looks_like_repo_id("a/b/c") and not looks_like_repo_id("x.pth")
    assert not looks_like_repo_id(str(TINY_DIR))  # an existing folder is never a Hub id
    assert _checkpoint_name(RELEASE, ["README.md", "ram_plus_swin_large_14m.pth", "other.pth"]) == "ram_plus_swin_large_14m.pth"
    assert _checkpoint_name("someone/x", ["README.md", "model.pth"]) == "model.pth"
    assert _checkpoint_name("someone/x", ["README.md", "weights.npz"]) is None
    with pytest.raises(UnsupportedRepositoryError, match="a.pth, b.pth"):
        _checkpoint_name("someone/x", ["a.pth", "b.pth"])


def test_the_package_serves_the_tagging_task_of_folders_that_ship_it(converted_tiny):
    """Folders carry custom_pipelines for remote-code users; with the package, its own pipeline needs no trust."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(converted_tiny)
    assert "zero-shot-image-tagging" in config.to_dict()["custom_pipelines"]  # saved as is
    assert "zero-shot-image-tagging" not in (config.custom_pipelines or {})  # what pipeline() sees


def test_ram_release_by_id_converts_and_loads(tmp_path, ram_reference_outputs):
    """RAM's Hub id goes through the same cached conversion: the repository's known RAM file is picked among its
    checkpoints (it also holds Tag2Text's), and the model is a RamModel with the golden logits."""
    from conftest import RAM_TINY_DIR

    repo = tmp_path / "ram_repo"
    repo.mkdir()
    shutil.copy(RAM_TINY_DIR / "ram_original.pth", repo / "ram_swin_large_14m.pth")
    shutil.copy(TINY_DIR / "ram_plus_original.pth", repo / "tag2text_swin_14m.pth")  # a second .pth, not picked
    for name in ("ram_tag_list.txt", "ram_tag_list_chinese.txt", "ram_tag_list_threshold.txt"):
        shutil.copy(RAM_TINY_DIR / name, repo / name)
    torch.save(ram_reference_outputs, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import torch
        import transformers_ramplus
        from transformers import AutoModel
        from transformers_ramplus import RamModel
        from transformers_ramplus.cli.main import main
        ID = "xinyu1205/recognize_anything_model"
        expected = torch.load({str(tmp_path / 'expected.pt')!r})
        for model in (AutoModel.from_pretrained(ID), RamModel.from_pretrained(ID)):
            assert type(model).__name__ == "RamModel", type(model)
            with torch.no_grad():
                logits = model.eval()(pixel_values=expected["pixel_values"]).logits
            torch.testing.assert_close(logits, expected["logits"], atol=1e-4, rtol=0)
        assert main(["convert", ID, {str(tmp_path / 'by_id')!r}]) == 0
        assert type(AutoModel.from_pretrained({str(tmp_path / 'by_id')!r})).__name__ == "RamModel"
        print("ram-ok")
        """
    )
    with LocalHub() as hub:
        hub.add_repo("xinyu1205/recognize_anything_model", repo)
        result = run(script, hub_env(hub, tmp_path / "hf"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ram-ok" in result.stdout


def test_own_entry_points_list_what_a_repository_without_a_model_holds(tmp_path):
    """The package's class, its pipeline task and `ramplus tag --model` on a Hub repository or a folder with neither
    config.json nor a .pth (or an empty one) name what it holds and what was expected, instead of transformers'
    "Unrecognized model ... `model_type`"; a bare `AutoConfig` keeps transformers' own error."""
    neither = tmp_path / "neither"
    neither.mkdir()
    (neither / "README.md").write_text("# not a model\n")
    (neither / "weights.npz").write_bytes(b"\0" * 10)
    (tmp_path / "empty").mkdir()
    pth_only = tmp_path / "pth_only"
    pth_only.mkdir()
    (pth_only / "model.pth").write_bytes(b"\0" * 10)
    script = textwrap.dedent(
        f"""
        import transformers_ramplus
        from transformers import AutoConfig, pipeline
        from transformers_ramplus import RamPlusModel
        from transformers_ramplus.cli.main import main
        from transformers_ramplus.inference.tagging import load_tagger

        def error_of(call):
            try:
                call()
            except Exception as error:
                return f"{{type(error).__name__}}: {{error}}"
            return "loaded"

        folder = {str(neither)!r}
        for label, call in [
            ("pipeline-hub", lambda: pipeline("zero-shot-image-tagging", model="someone/neither")),
            ("pipeline-folder", lambda: pipeline("zero-shot-image-tagging", model=folder)),
            ("class-hub", lambda: RamPlusModel.from_pretrained("someone/neither")),
            ("class-folder", lambda: RamPlusModel.from_pretrained(folder)),
            ("load_tagger-folder", lambda: load_tagger(folder)),
            ("pipeline-empty", lambda: pipeline("zero-shot-image-tagging", model="someone/empty")),
            ("class-pth", lambda: RamPlusModel.from_pretrained("someone/pth-only")),
            ("auto", lambda: AutoConfig.from_pretrained("someone/neither")),
        ]:
            print(label, "|", error_of(call).replace(chr(10), " "))
        print("cli |", main(["tag", {str(neither / "README.md")!r}, "--model", folder, "--no-progress"]))
        """
    )
    with LocalHub() as hub:
        hub.add_repo("someone/neither", neither)
        hub.add_repo("someone/empty", tmp_path / "empty")
        hub.add_repo("someone/pth-only", pth_only)
        result = run(script, hub_env(hub, tmp_path / "hf"))
    assert result.returncode == 0, result.stdout + result.stderr
    seen = dict(line.split(" | ", 1) for line in result.stdout.splitlines() if " | " in line)
    for label in ("pipeline-hub", "pipeline-folder", "class-hub", "class-folder", "load_tagger-folder"):
        assert seen[label].startswith("UnsupportedRepositoryError"), (label, seen[label])
        assert "no config.json" in seen[label] and "README.md, weights.npz" in seen[label], (label, seen[label])
    assert "holds no files" in seen["pipeline-empty"], seen
    assert "model.pth" in seen["class-pth"] and "ramplus convert" in seen["class-pth"], seen
    assert "UnsupportedRepositoryError" not in seen["auto"], seen  # other loads keep transformers' behaviour
    assert seen["cli"] == "2" and "README.md, weights.npz" in result.stderr, result.stderr


def test_a_damaged_cached_checkpoint_is_downloaded_again_or_named(tmp_path):
    """A truncated `.pth` in the Hugging Face cache: downloaded again (once) when the Hub serves another file, named
    with how to clear it when offline; a Hub file that is itself no checkpoint (a pickle of something else) is
    reported once, without a download loop."""
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(TINY_DIR / "ram_plus_original.pth", release / "model.pth")
    for name in ("ram_tag_list.txt", "ram_tag_list_chinese.txt", "ram_tag_list_threshold.txt"):
        shutil.copy(TINY_DIR / name, release / name)
    junk = tmp_path / "junk"
    junk.mkdir()
    torch.save({"not": "a state dict", "numbers": [1, 2, 3]}, junk / "model.pth")
    script = textwrap.dedent(
        f"""
        import os
        import transformers_ramplus
        from huggingface_hub import hf_hub_download
        from transformers import AutoModel

        def truncate(cache_dir):
            path = os.path.realpath(hf_hub_download({RELEASE!r}, "model.pth", cache_dir=cache_dir))
            with open(path, "r+b") as stream:
                stream.truncate(os.path.getsize(path) // 2)
            return path

        def error_of(call):
            try:
                call()
            except Exception as error:
                return f"{{type(error).__name__}}: {{error}}"
            return "loaded"

        # offline: the damaged file is named, with how to clear it
        path = truncate({str(tmp_path / 'offline')!r})
        print("offline |", path, "|", error_of(lambda: AutoModel.from_pretrained(
            {RELEASE!r}, cache_dir={str(tmp_path / 'offline')!r}, local_files_only=True)).replace(chr(10), " "))
        # online: the Hub serves another file, downloaded again; the model loads
        truncate(None)
        print("online |", error_of(lambda: AutoModel.from_pretrained({RELEASE!r})))
        # the Hub's own file is no checkpoint
        print("junk |", error_of(lambda: AutoModel.from_pretrained("xinyu1205/recognize_anything_model")).replace(chr(10), " "))
        """
    )
    with LocalHub() as hub:
        hub.add_repo(RELEASE, release)
        hub.add_repo("xinyu1205/recognize_anything_model", junk)
        result = run(script, hub_env(hub, tmp_path / "hf"))
        requests = list(hub.requests)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = {line.split(" | ")[0]: line.split(" | ")[1:] for line in result.stdout.splitlines() if " | " in line}
    path, message = seen["offline"]
    assert "ConversionError" in message and path in message and "rm " in message and "damaged" in message, message
    assert seen["online"] == ["loaded"], result.stderr
    assert "differs from the Hub's copy: downloading it again" in result.stderr
    junk_error = seen["junk"][0]
    assert "identical to the Hub's copy" in junk_error and "model.pth" in junk_error, junk_error
    downloads = [r for r in requests if r.startswith("GET /xinyu1205/recognize_anything_model/resolve/")]
    assert len(downloads) == 1, downloads  # no second download of an identical file


def test_tag2text_release_by_id_converts_once_with_the_bundled_tags_and_hub_tokenizer(tmp_path):
    """Tag2Text by Hub id, named with `original_file=` in the repository that also holds RAM: converted once with the
    3429-tag list shipped with the package and the default BERT tokenizer from the Hub (served here: the vendored
    tiny one), golden logits to 1e-4; a second process (offline) loads the cached copy without converting, and the
    same repository still gives RAM without `original_file`."""
    from conftest import FIXTURES_DIR, RAM_TINY_DIR

    t2t = FIXTURES_DIR / "tag2text_tiny"
    repo = tmp_path / "family"
    repo.mkdir()
    shutil.copy(t2t / "tag2text_original.pth", repo / "tag2text_swin_14m.pth")
    shutil.copy(RAM_TINY_DIR / "ram_original.pth", repo / "ram_swin_large_14m.pth")
    for name in ("ram_tag_list.txt", "ram_tag_list_chinese.txt", "ram_tag_list_threshold.txt"):
        shutil.copy(RAM_TINY_DIR / name, repo / name)
    golden = torch.load(t2t / "reference_outputs.pt", weights_only=True)
    torch.save({"pixel_values": golden["pixel_values"], "logits": golden["logits"]}, tmp_path / "expected.pt")
    common = textwrap.dedent(
        f"""
        import torch
        import transformers_ramplus
        from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor
        from transformers_ramplus import Tag2TextForConditionalGeneration
        from transformers_ramplus.cli.main import main
        ID, FILE = "xinyu1205/recognize_anything_model", "tag2text_swin_14m.pth"
        expected = torch.load({str(tmp_path / 'expected.pt')!r})

        def check(model):
            assert type(model).__name__ == "Tag2TextForConditionalGeneration", type(model)
            with torch.no_grad():
                logits = model.eval()(pixel_values=expected["pixel_values"]).logits
            torch.testing.assert_close(logits, expected["logits"], atol=1e-4, rtol=0)
        """
    )
    first = common + textwrap.dedent(
        f"""
        check(AutoModel.from_pretrained(ID, original_file=FILE))
        check(Tag2TextForConditionalGeneration.from_pretrained(ID, original_file=FILE))
        check(AutoModelForImageTextToText.from_pretrained(ID, original_file=FILE))
        processor = AutoProcessor.from_pretrained(ID, original_file=FILE)
        assert type(processor).__name__ == "Tag2TextProcessor", type(processor)
        assert type(AutoModel.from_pretrained(ID)).__name__ == "RamModel"  # the repository's default file: RAM
        assert main(["convert", ID, {str(tmp_path / 'by_id')!r}, "--original-file", FILE]) == 0
        check(AutoModel.from_pretrained({str(tmp_path / 'by_id')!r}))
        print("first-ok")
        """
    )
    second = common + textwrap.dedent(
        f"""
        check(AutoModel.from_pretrained(ID, original_file=FILE))
        assert type(AutoModel.from_pretrained(ID)).__name__ == "RamModel"
        code = main(["tag", {IMAGE!r}, "--model", ID, "--original-file", FILE, "--output",
                     {str(tmp_path / 'tags.jsonl')!r}, "--no-progress"])
        assert code == 0, code
        print("second-ok")
        """
    )
    home = tmp_path / "hf"
    with LocalHub() as hub:
        hub.add_repo("xinyu1205/recognize_anything_model", repo)
        hub.add_repo("google-bert/bert-base-uncased", t2t / "tokenizer")  # the default tokenizer's id
        env = hub_env(hub, home)
        result = run(first, env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "first-ok" in result.stdout
        # one conversion each for Tag2Text and RAM, then cached
        assert result.stderr.count("to a transformers model once; cached in") == 2, result.stderr
        result = run(second, {**env, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "second-ok" in result.stdout and "once; cached in" not in result.stderr
    converted = home / "hub" / "models--xinyu1205--recognize_anything_model" / "ramplus-converted"
    assert len([p for p in converted.glob("*/*") if p.is_dir()]) == 2
    records = [json.loads(line) for line in (tmp_path / "tags.jsonl").read_text().splitlines()]
    assert records[0]["path"] == IMAGE and records[0]["tags"]
