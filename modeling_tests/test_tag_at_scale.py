"""Tagging at scale: `ramplus tag` sharded over processes by `accelerate launch` (CPU, gloo) into one merged,
resumable output; `tag_dataset` on in-memory, streaming and `num_proc` datasets. Results are compared with the
single-process pipeline's."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REFERENCE_IMAGES
import transformers_ramplus  # noqa: F401
from transformers import pipeline
from transformers_ramplus.cli.main import main


COMMON = ["--threshold", "0.0", "--top-k", "3", "--no-progress"]


@pytest.fixture
def photos(tmp_path):
    """Six small images, the two reference photos and an unreadable file (sorted: bad.jpg first)."""
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(root / f"img{index}.png")
    for path in REFERENCE_IMAGES:
        shutil.copy(path, root / path.name)
    (root / "bad.jpg").write_bytes(b"not an image")
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_command(processes, tag_args):
    """`accelerate launch` of `ramplus tag` with CPU processes over gloo (the `--multi_gpu` launcher is torchrun's;
    accelerate's `--cpu` launcher would need mpirun for several processes)."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()), "-m", "transformers_ramplus.cli.main", "tag", *tag_args,
    ]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    env.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def _launch(processes, tag_args, timeout=240):
    return subprocess.run(_launch_command(processes, tag_args), env=_env(), capture_output=True, text=True, timeout=timeout)


def _records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _name(record):
    return Path(record["path"]).name


def _assert_same_results(records, expected):
    """The same inputs in the same order, the same tags, scores equal up to float noise (the processes batch other
    images together than one process does)."""
    assert [r["path"] for r in records] == [r["path"] for r in expected]
    for record, reference in zip(records, expected):
        assert ("error" in record) == ("error" in reference)
        if "error" in record:
            continue
        assert [t["label"] for t in record["tags"]] == [t["label"] for t in reference["tags"]]
        assert [t["score"] for t in record["tags"]] == pytest.approx([t["score"] for t in reference["tags"]], abs=1e-5)


def test_three_processes_write_one_merged_output(converted_tiny, photos, tmp_path, capsys):
    """3 CPU processes (gloo) tag a folder into one jsonl, in input order, as one process does; bad files are error
    records; the parts are gone; a single-process rerun resumes the merged output."""
    single = tmp_path / "single.jsonl"
    assert main(["tag", str(photos), "--model", str(converted_tiny), "--output", str(single), "--batch-size", "2", *COMMON]) == 1
    output = tmp_path / "merged.jsonl"
    result = _launch(3, [str(photos), "--model", str(converted_tiny), "--output", str(output), "--batch-size", "2", *COMMON])
    assert result.returncode == 1, result.stderr[-3000:]  # torchrun's status for any failure: one input is bad
    assert "ramplus tag: 3 processes, on cpu, cpu, cpu" in result.stderr
    assert "tagged 8 image(s) by 3 processes, 1 failed" in result.stderr
    assert "ramplus tag: exit code 1" in result.stderr
    records = _records(output)
    _assert_same_results(records, _records(single))
    assert "bad.jpg" in next(r for r in records if _name(r) == "bad.jpg")["error"]
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".merged"))
    assert leftovers == [".merged.jsonl.ramplus-tag.index", ".merged.jsonl.ramplus-tag.json"]  # no parts, no lock
    # the merged output is an ordinary resumable output: a plain rerun tags only the bad file again
    capsys.readouterr()
    assert main(["tag", str(photos), "--model", str(converted_tiny), "--output", str(output), "--batch-size", "2", *COMMON]) == 1
    assert "resuming: 8 of 9 images already have results" in capsys.readouterr().err
    assert [r for r in _records(output) if "error" not in r] == [r for r in records if "error" not in r]


class _StalledServer:
    """Accepts connections (the kernel's backlog) and never answers: an image URL that hangs its process."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/stalled.jpg"

    def __exit__(self, *exc):
        self.sock.close()


def _kill_tree(process):
    """SIGKILL the launcher and its workers (torchrun starts each worker in a session of its own)."""
    import psutil

    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for member in [*family, process]:
        try:
            os.kill(member.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)
    process.stderr.close()
    psutil.wait_procs(family, timeout=60)


def _wait_for_lines(paths, counts, process, limit=180):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended early ({process.returncode}): {process.stderr.read()[-3000:]}")
        if all(p.is_file() and len(p.read_text().splitlines()) >= n for p, n in zip(paths, counts)):
            return
        time.sleep(0.3)
    raise AssertionError(f"no progress in {limit} s")


def test_killed_run_resumes_with_another_process_count(converted_tiny, photos, tmp_path, capsys):
    """A 2-process run killed mid-way (one process stuck on a stalled URL) leaves parts; a 1-process rerun with more
    images merges them and tags only what is missing (a record cut short by the kill is redone); a rerun is a no-op."""
    import csv

    for name in ("bad.jpg", "img3.png", "img4.png", "img5.png"):
        (photos / name).unlink()
    output = tmp_path / "tags.csv"
    model = ["--model", str(converted_tiny)]
    with _StalledServer() as url:
        # 6 inputs shared round-robin: process 0 gets demo2, img1, openset_example; process 1 img0, img2, the URL
        command = _launch_command(2, [str(photos), url, *model, "--output", str(output), "--batch-size", "1", "--timeout", "300", *COMMON])
        process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        parts = tmp_path / ".tags.csv.ramplus-tag.parts"
        part0, part1 = parts / "part-00000.jsonl", parts / "part-00001.jsonl"
        try:
            _wait_for_lines([part0, part1], [3, 2], process)
        finally:
            _kill_tree(process)
    assert output.read_text() == "path,labels,scores,error\n"  # nothing merged yet
    # mark one finished record (it must not be redone) and cut the last record of the other part short
    lines = part0.read_text().splitlines()
    marked = json.loads(lines[0])
    lines[0] = json.dumps({**marked, "tags": [{"label": "sentinel", "score": 1.0}]})
    part0.write_text("\n".join(lines) + "\n")
    cut = json.loads(part1.read_text().splitlines()[-1])["path"]
    part1.write_text(part1.read_text()[:-20])
    shutil.copy(photos / "img0.png", photos / "img6.png")

    capsys.readouterr()
    assert main(["tag", str(photos), *model, "--output", str(output), "--batch-size", "1", *COMMON]) == 0
    err = capsys.readouterr().err
    assert "resuming: 4 of 6 images already have results" in err  # 5 finished, one of them cut short
    assert "tagged 2 image(s), 0 failed" in err
    assert not parts.exists()
    with open(output, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(r["path"]).name for r in rows] == sorted(p.name for p in photos.iterdir())  # each once, in order
    assert next(r for r in rows if r["path"] == marked["path"])["labels"] == "sentinel"  # not redone
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
    for row in rows:
        if Path(row["path"]).name in (Path(cut).name, "img6.png"):  # redone / new: the pipeline's results
            expected = tagger(row["path"], threshold=0.0, top_k=3)
            assert row["labels"] == " | ".join(t["label"] for t in expected)
            assert [float(v) for v in row["scores"].split(" | ")] == pytest.approx([t["score"] for t in expected], abs=2e-6)
    # nothing left to do: the output unchanged
    before = output.read_bytes()
    assert main(["tag", str(photos), *model, "--output", str(output), "--batch-size", "1", *COMMON]) == 0
    assert "resuming: 6 of 6" in capsys.readouterr().err
    assert output.read_bytes() == before


def test_merge_keeps_other_results_and_refuses_other_options(converted_tiny, photos, tmp_path, capsys):
    """Parts left by a killed sharded run are merged by a plain `ramplus tag` (one process) after checking the
    recorded options; results of inputs not named in the run stay in the output, first."""
    from transformers_ramplus.inference.sharding import parts_dir

    output = tmp_path / "tags.jsonl"
    model = ["--model", str(converted_tiny)]
    first = sorted(photos.glob("img*.png"))
    assert main(["tag", *map(str, first[:2]), *model, "--output", str(output), *COMMON]) == 0
    earlier = _records(output)
    # a killed sharded run over other images: its part holds one finished record of img2
    part = parts_dir(output) / "part-00003.jsonl"
    part.parent.mkdir()
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
    record = {"path": str(first[2]), "tags": [{"label": "sentinel", "score": 1.0}]}
    part.write_text(json.dumps(record) + "\n")
    stamp = os.stat(first[2])
    (part.parent / ".part-00003.jsonl.ramplus-tag.index").write_text(json.dumps([os.path.realpath(first[2]), [stamp.st_size, stamp.st_mtime_ns]]) + "\n")
    capsys.readouterr()
    assert main(["tag", *map(str, first[2:4]), *model, "--output", str(output), "--top-k", "2", "--threshold", "0.0"]) == 2
    assert "other options" in capsys.readouterr().err and part.exists()
    assert main(["tag", *map(str, first[2:4]), *model, "--output", str(output), *COMMON]) == 0
    records = _records(output)
    assert records[:2] == earlier
    assert [_name(r) for r in records[2:]] == [first[2].name, first[3].name]
    assert records[2]["tags"][0]["label"] == "sentinel"
    expected = tagger(str(first[3]), threshold=0.0, top_k=3)
    assert [t["label"] for t in records[3]["tags"]] == [t["label"] for t in expected]
    assert not parts_dir(output).exists()


# ------------------------------------------------------------------------------------------------ tag_dataset
@pytest.fixture
def image_dataset(photos):
    import datasets

    paths = [str(photos / name) for name in ("demo2.jpg", "img0.png", "bad.jpg", "img1.png")]
    features = datasets.Features({"image": datasets.Image(), "id": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": paths, "id": list(range(len(paths)))}, features=features), paths


def _pipeline_tags(model_dir, paths, **kwargs):
    tagger = pipeline("zero-shot-image-tagging", model=str(model_dir), device="cpu")
    return [None if Path(p).name == "bad.jpg" else tagger(p, **kwargs) for p in paths]


def test_tag_dataset_in_memory_streaming_and_num_proc(converted_tiny, image_dataset):
    import datasets

    from transformers_ramplus import tag_dataset

    dataset, paths = image_dataset
    expected = _pipeline_tags(converted_tiny, paths, threshold=0.0, top_k=3)
    config = transformers_ramplus.RamPlusConfig.from_pretrained(converted_tiny)
    to_chinese = dict(zip(config.tag_names, config.tag_names_chinese))
    options = dict(model=str(converted_tiny), threshold=0.0, top_k=3, batch_size=4)

    def check(rows):
        assert len(rows) == len(paths)
        for row, reference in zip(rows, expected):
            if reference is None:  # the unreadable file: an error, no tags
                assert "image 2 (" in row["tag_error"] and "bad.jpg" in row["tag_error"]  # the row and the file
                assert row["tags"] == [] and row["scores"] == []
                continue
            assert row["tag_error"] is None
            assert row["tags"] == [t["label"] for t in reference]
            assert row["scores"] == pytest.approx([t["score"] for t in reference], abs=1e-5)

    tagged = tag_dataset(dataset, chinese=True, **options)
    assert isinstance(tagged, datasets.Dataset)
    assert tagged.column_names == ["image", "id", "tags", "scores", "tags_zh", "tag_error"]
    assert tagged.features["image"] == datasets.Image()  # given back decoded
    rows = list(tagged.remove_columns("image"))
    check(rows)
    assert [r["id"] for r in rows] == list(range(len(paths)))
    assert [r["tags_zh"] for r in rows] == [[to_chinese[t] for t in r["tags"]] for r in rows]

    streamed = tag_dataset(dataset.to_iterable_dataset(num_shards=2), **options)  # lazy: tagged as it is read
    assert isinstance(streamed, datasets.IterableDataset)
    check(list(streamed.remove_columns("image")))

    parallel = tag_dataset(dataset, num_proc=2, **options)
    check(list(parallel.remove_columns("image")))

    skipped = tag_dataset(dataset, on_error="skip", **options)
    assert len(skipped) == len(paths) - 1 and "tag_error" not in skipped.column_names
    assert isinstance(skipped[0]["image"], Image.Image)
    with pytest.raises(ValueError, match="bad.jpg"):
        tag_dataset(dataset, on_error="raise", **options)


def test_tag_dataset_open_set_and_bad_arguments(converted_tiny_text, image_dataset):
    import datasets

    from transformers_ramplus import TagSet, tag_dataset

    dataset, paths = image_dataset
    names = json.loads((converted_tiny_text / "config.json").read_text())["id2label"]
    labels = [names["3"], "zebra", "lantern"]
    tagged = tag_dataset(dataset.select(range(2)), model=str(converted_tiny_text), candidate_labels=labels, threshold=0.0)
    expected = _pipeline_tags(converted_tiny_text, paths[:2], candidate_labels=labels, threshold=0.0)
    assert tagged["tags"] == [[t["label"] for t in e] for e in expected]
    assert set(tagged["tags"][0]) == set(labels)
    # a TagSet (open set, saved or built once) gives the same
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny_text), device="cpu")
    tag_set = tagger.get_tag_set(labels)
    assert isinstance(tag_set, TagSet)
    again = tag_dataset(dataset.select(range(2)), model=tagger.model, candidate_labels=tag_set, threshold=0.0)
    assert again["tags"] == tagged["tags"]
    # plain path columns work too
    plain = datasets.Dataset.from_dict({"file": paths[:2]})
    assert tag_dataset(plain, model=str(converted_tiny_text), image_column="file", candidate_labels=labels, threshold=0.0)["tags"] == tagged["tags"]
    with pytest.raises(ValueError, match="image_column"):
        tag_dataset(plain, model=str(converted_tiny_text))
    with pytest.raises(ValueError, match="on_error"):
        tag_dataset(dataset, model=str(converted_tiny_text), on_error="ignore")
    with pytest.raises(ValueError, match="num_proc"):
        tag_dataset(dataset.to_iterable_dataset(), model=str(converted_tiny_text), num_proc=2)
    with pytest.raises(TypeError, match="datasets.Dataset"):
        tag_dataset(paths, model=str(converted_tiny_text))
