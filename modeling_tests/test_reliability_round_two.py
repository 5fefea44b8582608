"""Reliability, round two (issue 22): nothing a user named as input is destroyed, links and special files are
written through, resumes never mislabel, one record per input, escaped outputs, nested JSON, EXIF orientation."""

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import REFERENCE_IMAGES, tiny_model, tiny_word_text_config, tiny_word_tokenizer
from PIL import Image

from transformers_ramplus.cli.main import main


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small-refs-2")
    paths = []
    for path in REFERENCE_IMAGES:
        image = Image.open(path).convert("RGB")
        image.thumbnail((96, 96))
        image.save(folder / path.name, quality=90)
        paths.append(folder / path.name)
    return paths


@pytest.fixture
def photos(tmp_path, refs):
    root = tmp_path / "photos"
    root.mkdir()
    for path in refs:
        shutil.copy(path, root / path.name)
    return root


def tag(model, *args):
    return main(["tag", *map(str, args), "--model", str(model), "--no-progress"])


def read_jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def make_training_folder(root, new_tag="lesion", count=4):
    """A tiny base model (3 tags, a text tower) and a metadata.jsonl image folder that adds `new_tag`."""
    base = root / "base"
    if not base.exists():
        from transformers_ramplus import RamPlusImageProcessor, RamPlusProcessor

        model = tiny_model(num_tags=3, text_config=tiny_word_text_config())
        model.config.id2label = {0: "red", 1: "green", 2: "blue"}
        model.config.label2id = {"red": 0, "green": 1, "blue": 2}
        model.save_pretrained(base)
        tokenizer = tiny_word_tokenizer(["a", "photo", "of", "red", "green", "blue", "lesion", "kitten", "square", "spot"])
        processor = RamPlusProcessor(image_processor=RamPlusImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
        processor.save_pretrained(base)
    images = root / "images"
    images.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for index in range(count):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / f"{index}.png")
        records.append({"file_name": f"{index}.png", "tags": ["red"] + ([new_tag] if index % 2 else [])})
    (images / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (root / "descriptions.json").write_text(json.dumps({"lesion": ["a lesion"], "kitten": ["a kitten"], "spot": ["a spot"]}))
    return base, images


def finetune(root, base, out, data, *extra):
    return main([
        "finetune", str(base), str(out), "--dataset", str(data), "--descriptions", str(root / "descriptions.json"),
        "--max-steps", "1", "--batch-size", "2", "--save_steps", "1", "--no-captions", "--report_to", "none", *map(str, extra),
    ])


def tree(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes()) for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------ 1. finetune inputs
def test_finetune_never_replaces_dataset_eval_dataset_or_teacher(tmp_path, capsys):
    base, images = make_training_folder(tmp_path)
    out = tmp_path / "out"
    # the training data lives where the adapter goes
    shutil.copytree(images, out / "adapter")
    before = tree(out / "adapter")
    assert finetune(tmp_path, base, out, out / "adapter", "--overwrite") == 2
    err = capsys.readouterr().err
    assert "would replace the input" in err and "adapter" in err
    assert tree(out / "adapter") == before
    # evaluation data where the merged model goes
    shutil.copytree(images, out / "model")
    before = tree(out / "model")
    assert finetune(tmp_path, base, out, images, "--eval-dataset", out / "model", "--merge", "--overwrite") == 2
    assert "would replace the input" in capsys.readouterr().err and tree(out / "model") == before
    # a teacher inside the output; and data inside the Trainer's checkpoints (rotated away by save_total_limit)
    shutil.copytree(base, out / "model" / "teacher")
    assert finetune(tmp_path, base, out, images, "--teacher", out / "model" / "teacher", "--merge", "--overwrite") == 2
    shutil.copytree(images, out / "checkpoints" / "data")
    assert finetune(tmp_path, base, tmp_path / "out", out / "checkpoints" / "data", "--overwrite") == 2
    assert "would replace the input" in capsys.readouterr().err
    # the dataset reached through a symbolic link is recognised too
    os.symlink(out / "adapter", tmp_path / "link")
    assert finetune(tmp_path, base, out, tmp_path / "link", "--overwrite") == 2
    assert tree(out / "adapter") == before


# ------------------------------------------------------------------------------------------------ 3. resume vocabulary
def test_resume_with_renamed_or_added_tags_stops_naming_them(tmp_path, capsys):
    base, images = make_training_folder(tmp_path)
    out = tmp_path / "out"
    assert finetune(tmp_path, base, out, images) == 0
    assert (out / "checkpoints" / "checkpoint-1").is_dir()
    capsys.readouterr()
    # same count, another name: would train `kitten` labels into the `lesion` slot
    make_training_folder(tmp_path, new_tag="kitten")
    assert finetune(tmp_path, base, out, images, "--resume", "--max-steps", "2") == 2
    err = capsys.readouterr().err
    assert "kitten" in err and "lesion" in err and "--resume" in err and "start afresh" in err
    assert not (out / "checkpoints" / "checkpoint-2").exists()
    # another count (was: a deep "labels must have shape" error)
    records = [json.loads(line) for line in (images / "metadata.jsonl").read_text().splitlines()]
    records[0]["tags"].append("spot")
    (images / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert finetune(tmp_path, base, out, images, "--resume", "--max-steps", "2") == 2
    err = capsys.readouterr().err
    assert "spot" in err and "4 tags then, 5 now" in err
    # without --resume or --overwrite the old checkpoints are not mixed with a new run
    shutil.rmtree(out / "adapter")
    assert finetune(tmp_path, base, out, images) == 2
    assert "holds checkpoints of an earlier run" in capsys.readouterr().err
    # asked to start afresh: the earlier checkpoints go, the new vocabulary is trained
    assert finetune(tmp_path, base, out, images, "--overwrite") == 0
    vocabulary = json.loads((out / "checkpoints" / "checkpoint-1" / "tag_vocabulary.json").read_text())
    assert sorted(vocabulary["names"][3:]) == ["kitten", "spot"]


# ------------------------------------------------------------------------------------------------ 4. output = input
def test_an_output_that_is_an_input_is_refused(converted_tiny, photos, tmp_path, capsys):
    photo = photos / min(os.listdir(photos))
    before = photo.read_bytes()
    assert tag(converted_tiny, photo, "-o", photo, "--overwrite") == 2
    assert "is also an input" in capsys.readouterr().err and photo.read_bytes() == before
    # through another spelling, a symbolic link and a hard link
    os.symlink(photo, tmp_path / "link.jpg")
    os.link(photo, tmp_path / "hard.jpg")
    for output in (f"{photos}/../photos/{photo.name}", tmp_path / "link.jpg", tmp_path / "hard.jpg"):
        assert tag(converted_tiny, photo, "-o", output, "--overwrite", "--format", "jsonl") == 2
        assert "is also an input" in capsys.readouterr().err
    # a photo in a folder being tagged, named as the output
    assert tag(converted_tiny, photos, "-o", photo, "--overwrite", "--format", "csv") == 2
    assert "is also an input" in capsys.readouterr().err
    assert photo.read_bytes() == before and (tmp_path / "link.jpg").is_symlink()
    # the usual case stays allowed: the output inside the folder, resumed and overwritten
    output = photos / "tags.jsonl"
    assert tag(converted_tiny, photos, "-o", output) == 0
    assert tag(converted_tiny, photos, "-o", output, "--overwrite") == 0
    assert len(read_jsonl(output)) == 2 and photo.read_bytes() == before


# ------------------------------------------------------------------------------------------------ 2. links, streams
def test_links_are_written_through_and_special_files_stream(converted_tiny, photos, tmp_path, capfd):
    target = tmp_path / "real" / "tags.jsonl"
    target.parent.mkdir()
    link = tmp_path / "link.jsonl"
    os.symlink(target, link)  # dangling: its target is created
    assert tag(converted_tiny, photos, "-o", link) == 0
    assert link.is_symlink() and len(read_jsonl(target)) == 2
    # state files next to the target, none next to the link
    assert any(p.name.startswith(".tags.jsonl.") for p in target.parent.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".link")]
    assert tag(converted_tiny, photos, "-o", link) == 0  # resumed through the link
    assert "2 of 2 images already have results" in capfd.readouterr().err
    assert link.is_symlink() and len(read_jsonl(target)) == 2
    # `-` and /dev/stdout stream; nothing is created next to them
    for output in ("-", "/dev/stdout"):
        if output != "-" and not os.path.exists(output):
            continue
        assert tag(converted_tiny, photos, "-o", output, "--format", "jsonl") == 0
        out = capfd.readouterr().out
        assert len([line for line in out.splitlines() if line.startswith("{")]) == 2, (output, out[:300])
    assert not (tmp_path / "-").exists()
    if os.path.exists("/dev/stdout"):
        assert os.path.islink("/dev/stdout") or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_fifo_output_streams(converted_tiny, photos, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = []
    def read():
        with open(fifo, encoding="utf-8") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert tag(converted_tiny, photos, "-o", fifo, "--format", "csv") == 0
    reader.join(30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    rows = list(csv.DictReader(received[0].splitlines()))
    assert len(rows) == 2 and sorted(os.listdir(tmp_path)) == ["out.fifo", "photos"]


# ------------------------------------------------------------------------------------------------ 5. one record per input
@pytest.mark.parametrize("fmt", [pytest.param("jsonl", marks=pytest.mark.slow), "csv", pytest.param("text", marks=pytest.mark.slow)])
def test_reruns_keep_one_record_per_input(converted_tiny, photos, tmp_path, fmt):
    from transformers_ramplus.io.inputs import input_key
    from transformers_ramplus.io.records import record_path, split_records

    (photos / "broken.jpg").write_bytes(b"not an image")
    output = tmp_path / f"tags.{fmt}"
    for _ in range(3):
        assert tag(converted_tiny, photos, "-o", output, "--format", fmt) == 1

    def keys():
        records, _ = split_records(output.read_bytes(), fmt)
        return [input_key(p) for p in (record_path(r, fmt) for r in records) if p is not None]

    assert sorted(keys()) == sorted(set(keys())) and len(keys()) == 3
    shutil.copy(photos / min(p for p in os.listdir(photos) if p != "broken.jpg"), photos / "broken.jpg")
    assert tag(converted_tiny, photos, "-o", output, "--format", fmt) == 0
    assert len(keys()) == 3 and len(set(keys())) == 3
    assert "ERROR" not in output.read_text() and '"error"' not in output.read_text()


# ------------------------------------------------------------------------------------------------ 7. escaping
def test_separator_and_formula_cells_are_escaped(converted_tiny_text, refs, tmp_path, monkeypatch):
    from transformers_ramplus.io.records import csv_cell_value, split_labels

    monkeypatch.chdir(tmp_path)
    photo = "=HYPERLINK(1).jpg"  # a relative path: the csv cell would start with "="
    shutil.copy(refs[0], photo)
    labels = ["cat | dog", "@SUM(A1)", "+2-3"]
    for fmt in ("csv", "text"):
        output = tmp_path / f"t.{fmt}"
        args = [photo, "-o", output, "--labels", *labels, "--threshold", "0.0"]
        assert main(["tag", *map(str, args), "--model", str(converted_tiny_text), "--no-progress"]) == 0
        if fmt == "csv":
            with open(output, encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == 1
            row = rows[0]
            # no cell starts like a formula
            assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row.values())
            assert row["path"] == "'" + photo and csv_cell_value(row["path"]) == photo
            names = split_labels(csv_cell_value(row["labels"]))
            assert sorted(names) == sorted(labels) and len(row["scores"].split(" | ")) == 3
        else:
            line = output.read_text(encoding="utf-8").rstrip("\n")
            assert line.split("\t", 1)[1].count(" | ") == 2  # 3 labels, 2 separators
        # resumed: the escaped records are found again
        assert main(["tag", *map(str, args), "--model", str(converted_tiny_text), "--no-progress"]) == 0
        assert len(output.read_text(encoding="utf-8").strip().splitlines()) == (2 if fmt == "csv" else 1)


# ------------------------------------------------------------------------------------------------ 6. nested JSON
def test_deeply_nested_json_is_bad_input_naming_the_file(converted_tiny, refs, tmp_path, capsys):
    from transformers_ramplus.training.data import collect_tag_names

    deep = "[" * 50_000 + "]" * 50_000
    (tmp_path / "descriptions.json").write_text(deep)
    assert tag(converted_tiny, refs[0], "--descriptions", tmp_path / "descriptions.json") == 2
    err = capsys.readouterr().err
    assert "descriptions.json" in err and "nested" in err and "Traceback" not in err and "internal error" not in err
    # metadata.jsonl: pyarrow (datasets) would crash the process, not raise
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "metadata.jsonl").write_text('{"file_name": "a.png", "tags": ' + deep + "}\n")
    with pytest.raises(ValueError, match="metadata.jsonl.*nested"):
        collect_tag_names(tmp_path / "data")
    # brackets inside strings are text, not nesting
    (tmp_path / "ok.json").write_text(json.dumps([{"lesion": ["[" * 500 + "a lesion"]}]))
    assert tag(converted_tiny, refs[0], "--descriptions", tmp_path / "ok.json", "--labels", "lesion") in (0, 2)
    assert "nested" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ 8. EXIF orientation
def test_exif_orientation_is_applied_by_default_and_can_be_turned_off(converted_tiny, refs, tmp_path):
    from PIL import ImageOps

    image = Image.open(refs[0]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(tmp_path / "phone.jpg") as stored:
        ImageOps.exif_transpose(stored).save(tmp_path / "upright.png")
        stored.convert("RGB").save(tmp_path / "as_stored.png")

    def scores(*extra):
        output = tmp_path / f"t{len(extra)}.jsonl"
        names = ["phone.jpg", "upright.png", "as_stored.png"]
        assert tag(converted_tiny, *[tmp_path / n for n in names], "-o", output, "--threshold", "0", *extra) == 0
        return {os.path.basename(r["path"]): {t["label"]: t["score"] for t in r["tags"]} for r in read_jsonl(output)}

    default = scores()
    assert default["phone.jpg"] == pytest.approx(default["upright.png"], abs=1e-5)
    assert default["phone.jpg"] != pytest.approx(default["as_stored.png"], abs=1e-3)
    ignored = scores("--no-exif-orientation")
    assert ignored["phone.jpg"] == pytest.approx(ignored["as_stored.png"], abs=1e-5)


def test_the_pipeline_applies_exif_orientation_unless_told_not_to(converted_tiny, refs, tmp_path):
    from PIL import ImageOps
    from transformers import pipeline

    image = Image.open(refs[0]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(tmp_path / "phone.jpg") as stored:
        ImageOps.exif_transpose(stored).save(tmp_path / "upright.png")
        stored.convert("RGB").save(tmp_path / "as_stored.png")

    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
    upright = tagger(str(tmp_path / "upright.png"), raw_scores=True)
    assert torch_close(tagger(str(tmp_path / "phone.jpg"), raw_scores=True), upright)
    off = tagger(str(tmp_path / "phone.jpg"), raw_scores=True, apply_exif_orientation=False)
    assert torch_close(off, tagger(str(tmp_path / "as_stored.png"), raw_scores=True))


def torch_close(a, b):
    import torch

    return torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=1e-5)


# ------------------------------------------------------------------------------------------------ 9. small gaps
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_folder_scans_report_fifos_and_broken_links(tmp_path):
    from transformers_ramplus.io.inputs import collect_inputs

    (tmp_path / "a.jpg").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "broken.jpg")
    (tmp_path / "sub").mkdir()
    found = sorted(os.path.basename(p) for p in collect_inputs([str(tmp_path)]))
    assert found == ["a.jpg", "broken.jpg", "pipe.jpg"]  # each gets an error record instead of vanishing


def test_dicom_frame_must_be_a_whole_number():
    from transformers_ramplus import RamPlusImageProcessor
    from transformers_ramplus.models.ram_plus.image_processing_ram_plus import load_image

    for bad in (1.5, "2", True):
        with pytest.raises(ValueError, match="dicom_frame"):
            RamPlusImageProcessor(dicom_frame=bad)
        with pytest.raises(ValueError, match="dicom_frame"):
            load_image(np.zeros((4, 4, 3), dtype=np.uint8), dicom_frame=bad)
    assert RamPlusImageProcessor(dicom_frame=-1).dicom_frame == -1


def test_tag_dataset_does_not_overwrite_an_existing_column():
    datasets = pytest.importorskip("datasets")
    from transformers_ramplus.inference.tag_dataset import tag_dataset

    data = datasets.Dataset.from_dict({"image": ["a.jpg"], "tags": [["mine"]]})
    with pytest.raises(ValueError, match=r"already has the column\(s\) \['tags'\].*overwrite=True"):
        tag_dataset(data, model="unused")
    assert data["tags"] == [["mine"]]


def test_pydicom_logs_stay_out_of_the_cli_output_and_timeout_is_documented(capsys):
    import logging

    from transformers_ramplus.cli.main import configure_output

    logger = logging.getLogger("pydicom")
    level = logger.level
    try:
        configure_output(verbose=False)
        assert not logger.isEnabledFor(logging.CRITICAL)
    finally:
        logger.setLevel(level)
    with pytest.raises(SystemExit):
        main(["tag", "--help"])
    assert "10 times" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------------------------------------------ more hostile cases
def test_a_second_writer_through_a_link_is_stopped(converted_tiny, photos, tmp_path, capsys):
    from transformers_ramplus.io.atomic import OutputLock

    target = tmp_path / "tags.jsonl"
    os.symlink(target, tmp_path / "link.jsonl")
    with OutputLock(target):  # a run writing the target itself
        assert tag(converted_tiny, photos, "-o", tmp_path / "link.jsonl") == 2
    assert "being written by another process" in capsys.readouterr().err
    # a link loop and a link to a folder are named, not followed forever
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    os.symlink(photos, tmp_path / "folder-link")
    assert tag(converted_tiny, photos, "-o", tmp_path / "loop", "--format", "jsonl") == 2
    assert "too many levels of symbolic links" in capsys.readouterr().err
    assert tag(converted_tiny, photos, "-o", tmp_path / "folder-link") == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess (~15 s of imports)
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE")
def test_a_full_disk_keeps_what_was_written_and_resumes(converted_tiny, photos, tmp_path):
    import resource

    output = tmp_path / "tags.jsonl"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))  # a few hundred bytes: the first record does not fit

    command = [sys.executable, "-m", "transformers_ramplus.cli", "tag", str(photos), "--model", str(converted_tiny),
               "-o", str(output), "--no-progress"]
    result = subprocess.run(command, preexec_fn=limit, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "file-size limit" in result.stderr and "Traceback" not in result.stderr
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary litter
    assert tag(converted_tiny, photos, "-o", output) == 0  # the cut record is dropped and redone
    records = read_jsonl(output)
    assert len(records) == 2 and all("tags" in r for r in records)


def test_an_adapter_whose_base_model_moved_names_the_field(refs, tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "moved" / "base"), "peft_type": "LORA"}))
    assert main(["tag", str(refs[0]), "--model", str(adapter), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "base_model_name_or_path" in err and "moved" in err and "Repo id must be" not in err


def test_evaluate_and_describe_refuse_outputs_that_are_inputs(tmp_path, capsys):
    (tmp_path / "annotations.txt").write_text("a.jpg,red\n")
    (tmp_path / "tags.txt").write_text("red\n")
    (tmp_path / "images").mkdir()
    for option in ("--output", "--cache"):
        command = ["evaluate", str(tmp_path / "model"), "--images", str(tmp_path / "images"), "--annotations",
                   str(tmp_path / "annotations.txt"), "--tag-list", str(tmp_path / "tags.txt"), option, str(tmp_path / "tags.txt")]
        assert main(command) == 2
        assert "is also an input" in capsys.readouterr().err
    assert main(["describe", "--tags-file", str(tmp_path / "tags.txt"), "--model", "unused", "--output", str(tmp_path / "tags.txt")]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert (tmp_path / "tags.txt").read_text() == "red\n" and (tmp_path / "annotations.txt").read_text() == "a.jpg,red\n"


# ------------------------------------------------------------------------------------------------ 9. finetune summary
def test_finetune_summary_counts_every_broken_image_it_warned_about(tmp_path, capsys, caplog):
    """Two broken images among four, one step of two: the loader reads the second batch ahead, so both are warned
    about although one step never trains on the second; the summary used to count only the trained batch's."""
    base, images = make_training_folder(tmp_path, count=4)
    (images / "0.png").write_bytes(b"not an image")
    (images / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert finetune(tmp_path, base, tmp_path / "out", images) == 0
    err = capsys.readouterr().err
    warned = [r.getMessage() for r in caplog.records if "skipping a broken image" in r.getMessage()]
    assert len(warned) == 2, warned
    assert "(2 broken images skipped" in err, err
