"""Hostile inputs: no hang, no crash, no silent wrong result, nothing the user owns deleted.

Covers stalled and failing URLs, decompression bombs, unsafe `--overwrite`, stale caches, all-unreadable training
data, control characters in paths, resume with other options, concurrent writers, corrupt tag sets, private or
littered outputs, and the smaller silent cases (NaN weights, odd arrays, positions in messages, duplicate spellings,
empty folders), plus more found by trying.
"""

import contextlib
import csv
import http.server
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from pathlib import Path
import torch
from PIL import Image

from conftest import REFERENCE_IMAGES, tiny_model
import transformers_ramplus  # noqa: F401  (registers the task)
from transformers import pipeline
from transformers_ramplus.io.atomic import (
    OutputLock,
    atomic_directory,
    atomic_write_text,
    clean_stale_temporaries,
)
from transformers_ramplus.cli.main import main
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import ImageLoadingError, RamPlusImageProcessor, load_image


# ------------------------------------------------------------------------------------------------ helpers
def png_bomb(width=100_000, height=100_000) -> bytes:
    """A ~100-byte PNG whose header declares `width` x `height` pixels."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@contextlib.contextmanager
def silent_server():
    """A server on 127.0.0.1 that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/photo.jpg"
    finally:
        sock.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/photo.jpg":
            body = REFERENCE_IMAGES[0].read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/empty":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/page.html":
            body = b"<html><body>not an image</body></html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(200):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
        else:
            self.send_error(404, "Not Found")


@contextlib.contextmanager
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """The two reference photos, downscaled (decoding the 3000x2000 original costs more than tagging it)."""
    folder = tmp_path_factory.mktemp("small-refs")
    paths = []
    for path in REFERENCE_IMAGES:
        image = Image.open(path).convert("RGB")
        image.thumbnail((160, 160))
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


@pytest.fixture(scope="module")
def tagger(converted_tiny):
    return pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")


# ------------------------------------------------------------------------------------------------ 1. network
def test_stalled_url_times_out_everywhere(converted_tiny, tagger, tmp_path, capsys, refs):
    with silent_server() as url:
        started = time.monotonic()
        with pytest.raises(ImageLoadingError, match=r"image 0 .*within 0.3 s \(timeout\)"):
            load_image(url, timeout=0.3)
        with pytest.raises(ValueError, match="timeout"):
            RamPlusImageProcessor(timeout=0.3)(url)
        with pytest.raises(ValueError, match=r"image 1 .*timeout"):
            tagger([str(refs[0]), url], timeout=0.3)
        output = tmp_path / "tags.jsonl"
        code = main(["tag", str(refs[0]), url, "--model", str(converted_tiny), "-o", str(output), "--timeout", "0.3"])
        assert time.monotonic() - started < 30
    assert code == 1
    records = read_jsonl(output)
    assert "tags" in records[0] and "timeout" in records[1]["error"]
    with pytest.raises(ValueError, match="timeout"):
        tagger(str(refs[0]), timeout=-1)
    assert main(["tag", url, "--model", str(converted_tiny), "--timeout", "0"]) == 2


def test_http_errors_say_the_status_code(tagger):
    with http_server() as base:
        with pytest.raises(ImageLoadingError, match="HTTP 404"):
            load_image(base + "/missing.jpg")
        with pytest.raises(ValueError, match="HTTP 404"):
            tagger(base + "/missing.jpg")
        assert load_image(base + "/photo.jpg").size == Image.open(REFERENCE_IMAGES[0]).size  # a good URL still works
        # own hostile cases: an empty body, a web page, a server that trickles one byte at a time
        with pytest.raises(ImageLoadingError, match="empty body"):
            load_image(base + "/empty")
        with pytest.raises(ImageLoadingError, match="not a readable image"):
            load_image(base + "/page.html")
        started = time.monotonic()
        with pytest.raises(ImageLoadingError, match="longer than 1 s"):
            load_image(base + "/trickle", timeout=0.1)
        assert time.monotonic() - started < 5


# ------------------------------------------------------------------------------------------------ 2. bombs
def test_decompression_bombs_are_image_errors(converted_tiny, tagger, photos, tmp_path, capsys, refs):
    bomb = png_bomb()
    with pytest.raises(ImageLoadingError, match="decompression bomb"):
        load_image(bomb, 4)
    with pytest.raises(ValueError, match="image 1 .*decompression bomb"):
        RamPlusImageProcessor()([str(refs[0]), bomb])
    with pytest.raises(ValueError, match="decompression bomb"):
        tagger(bomb)
    # the limit is configurable, in the processor and in `ramplus tag`
    small = png_bomb(64, 64)
    with pytest.raises(ImageLoadingError, match="more than the limit of 1000"):
        RamPlusImageProcessor(max_image_pixels=1000).load_image(small)
    # a batch job records the bomb and tags the images after it
    (photos / "0-bomb.png").write_bytes(bomb)
    output = tmp_path / "tags.jsonl"
    assert main(["tag", str(photos), "--model", str(converted_tiny), "-o", str(output), "--batch-size", "1"]) == 1
    records = {os.path.basename(r["path"]): r for r in read_jsonl(output)}
    assert "decompression bomb" in records["0-bomb.png"]["error"]
    assert all("tags" in records[p.name] for p in refs)
    output2 = tmp_path / "limited.jsonl"
    assert main(["tag", str(refs[0]), "--model", str(converted_tiny), "-o", str(output2), "--max-image-pixels", "100"]) == 1
    assert "more than the limit of 100" in read_jsonl(output2)[0]["error"]


def test_training_collator_skips_and_counts_a_bomb(tmp_path, refs):
    from transformers_ramplus.training.data import RamPlusDataCollator

    (tmp_path / "bomb.png").write_bytes(png_bomb())
    shutil.copy(refs[0], tmp_path / "good.jpg")
    collator = RamPlusDataCollator(5, image_size=64)
    batch = collator([{"image_path": str(tmp_path / "bomb.png"), "label_ids": [1]}, {"image_path": str(tmp_path / "good.jpg"), "label_ids": [2]}])
    assert batch["pixel_values"].shape[0] == 1 and int(batch["num_skipped_images"]) == 1
    assert collator.skipped_paths == [str(tmp_path / "bomb.png")]


# ------------------------------------------------------------------------------------------------ 4, 5. evaluate / finetune
@pytest.fixture
def small_benchmark(tmp_path):
    model = tiny_model(num_tags=3)
    model.config.id2label = {0: "red", 1: "green", 2: "blue"}
    model.config.label2id = {"red": 0, "green": 1, "blue": 2}
    model.save_pretrained(tmp_path / "model")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    lines, records = [], []
    for index in range(6):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(images / f"{index}.png")
        tags = ["red", "green"] if index % 2 else ["blue"]
        lines.append(f"{index}.png," + ",".join(tags))
        records.append({"file_name": f"{index}.png", "tags": tags})
    (tmp_path / "annotations.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "tags.txt").write_text("red\ngreen\nblue\n")
    (images / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return tmp_path


def test_evaluate_cache_follows_file_contents(small_benchmark, capsys):
    root = small_benchmark
    command = [
        "evaluate", str(root / "model"), "--images", str(root / "images"), "--annotations", str(root / "annotations.txt"),
        "--tag-list", str(root / "tags.txt"), "--cache", str(root / "scores.npz"), "--per-class",
    ]
    assert main(command) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(command) == 0
    captured = capsys.readouterr()
    assert "using cached scores" in captured.err and json.loads(captured.out) == first
    # a fixed/replaced image (same name) must be scored again
    Image.fromarray(np.full((48, 48, 3), 250, dtype=np.uint8)).save(root / "images" / "1.png")
    assert main(command) == 0
    captured = capsys.readouterr()
    assert "using cached scores" not in captured.err and "other inputs" in captured.err
    assert json.loads(captured.out)["per_class"] != first["per_class"]
    # a corrupt cache file is ignored and rewritten (own hostile case)
    (root / "scores.npz").write_bytes(b"garbage")
    assert main(command) == 0
    assert "ignoring the unreadable scores cache" in capsys.readouterr().err
    # bombs are skipped and counted; nothing readable -> exit 1
    (root / "images" / "2.png").write_bytes(png_bomb())
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)["num_skipped_images"] == 1
    for index in range(6):
        (root / "images" / f"{index}.png").write_bytes(png_bomb())
    assert main(command) == 1
    assert "none of the 6 benchmark images could be read" in capsys.readouterr().err


def test_finetune_with_no_readable_image_fails(small_benchmark, capsys):
    root = small_benchmark
    for index in range(6):
        (root / "images" / f"{index}.png").write_bytes(b"not an image" if index % 2 else png_bomb())
    out = root / "finetuned"
    code = main(["finetune", str(root / "model"), str(out), "--train-folder", str(root / "images"), "--max-steps", "1", "--batch-size", "2", "--full"])
    assert code == 1
    assert "none of the 6 training images could be read" in capsys.readouterr().err
    assert not (out / "model").exists() and not (out / "adapter").exists()
    # an output that would replace an input is refused
    assert main(["finetune", str(root / "model"), str(root), "--train-folder", str(root / "images"), "--full"]) == 2
    assert "would replace the input" in capsys.readouterr().err


def test_metadata_tags_string_is_one_tag_not_letters(tmp_path):
    from transformers_ramplus.training.data import collect_tag_names

    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "tags": "abacus"}\n')
    assert collect_tag_names(tmp_path) == ["abacus"]


# ------------------------------------------------------------------------------------------------ 6. formats
@pytest.mark.skipif(sys.platform == "win32", reason="control characters in file names")
def test_control_characters_in_paths_round_trip(converted_tiny, photos, tmp_path, refs):
    weird = ["cr\rname.jpg", "nl\nta\tb.jpg", "back\\slash quote\"comma,bell\x07.jpg", "sep\u2028\x85.jpg"]
    for path in photos.iterdir():
        path.unlink()
    for name in weird:
        shutil.copy(refs[0], photos / name)
    expected = {str(photos / name) for name in weird}
    common = ["--model", str(converted_tiny), "--threshold", "0.0", "--top-k", "2", "--batch-size", "3"]
    for fmt in ("csv", "text", "jsonl"):
        output = tmp_path / f"out.{fmt}"
        assert main(["tag", str(photos), *common, "-o", str(output)]) == 0
        before = output.read_bytes()
        assert main(["tag", str(photos), *common, "-o", str(output)]) == 0  # a rerun adds nothing
        assert output.read_bytes() == before
        if fmt == "csv":
            with open(output, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            assert {r["path"] for r in rows} == expected
            assert all(r["error"] == "" and len(r["labels"].split(" | ")) == 2 for r in rows)
        elif fmt == "text":
            from transformers_ramplus.io.records import unescape_text

            lines = before.decode().split("\n")
            assert lines[-1] == "" and len(lines) == len(expected) + 1  # one line per image
            assert {unescape_text(line.split("\t")[0]) for line in lines[:-1]} == expected
            assert not any(c in line for line in lines for c in "\r\x07")
        else:
            assert {json.loads(line)["path"] for line in before.decode().split("\n") if line} == expected


@pytest.mark.parametrize("fmt", ["text", "csv", "jsonl"])
def test_a_cut_last_record_is_dropped_and_redone(converted_tiny, photos, tmp_path, fmt, capsys, refs):
    (photos / "q\"uote\nd.jpg").write_bytes(refs[1].read_bytes())
    output = tmp_path / f"out.{fmt}"
    args = ["tag", str(photos), "--model", str(converted_tiny), "-o", str(output), "--threshold", "0.0", "--top-k", "3"]
    assert main(args) == 0
    complete = output.read_bytes()
    # cut inside the last record (for csv: inside the quoted path holding a newline)
    last_start = complete.rstrip(b"\n").rfind(b"\n" if fmt != "csv" else b'\n"') + 1
    cut = last_start + (5 if fmt != "csv" else complete.index(b"\n", last_start) - last_start + 1)
    output.write_bytes(complete[:cut])
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "dropped an unfinished last record" in err and "tagged 1 image(s)" in err
    redone = output.read_bytes()
    assert redone[:last_start] == complete[:last_start]
    if fmt == "csv":  # same record again (scores equal up to batch-size float noise)
        again, first = (list(csv.reader(data[last_start:].decode().splitlines(keepends=True))) for data in (redone, complete))
        assert [row[:2] + row[3:] for row in again] == [row[:2] + row[3:] for row in first]
        assert np.allclose([float(x) for x in again[0][2].split(" | ")], [float(x) for x in first[0][2].split(" | ")], atol=1e-5)
    elif fmt == "jsonl":
        again, first = (json.loads(data[last_start:]) for data in (redone, complete))
        assert again["path"] == first["path"] and [t["label"] for t in again["tags"]] == [t["label"] for t in first["tags"]]
    else:
        assert redone.count(b"\n") == complete.count(b"\n") and redone[last_start:].split(b"(")[0] == complete[last_start:].split(b"(")[0]


# ------------------------------------------------------------------------------------------------ 7. options
def test_resume_with_other_options_refuses(converted_tiny, photos, tmp_path, capsys, refs):
    output = tmp_path / "tags.jsonl"
    base = ["tag", str(photos), "--model", str(converted_tiny), "-o", str(output)]
    assert main(base + ["--threshold", "0.2"]) == 0
    names = json.loads((converted_tiny / "config.json").read_text())["id2label"]
    for extra in (["--threshold", "0.7"], ["--labels", names["3"]], ["--top-k", "1"], ["--language", "zh"]):
        capsys.readouterr()
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert "other options" in err and "--overwrite" in err
    assert main(base + ["--threshold", "0.2"]) == 0  # the same options resume
    assert "2 of 2 images already have results" in capsys.readouterr().err
    assert main(base + ["--threshold", "0.2", "--top-k", "1", "--overwrite"]) == 0
    assert [len(r["tags"]) for r in read_jsonl(output)] == [1, 1]
    # another model (its files changed) is another option too
    other = tmp_path / "other-model"
    shutil.copytree(converted_tiny, other)
    assert main(["tag", str(photos), "--model", str(other), "-o", str(output), "--threshold", "0.2", "--top-k", "1"]) == 2
    # a file ramplus did not write (a JPEG given as -o) is never touched without --overwrite, and is named
    jpeg = tmp_path / "holiday.jpg"
    shutil.copy(refs[0], jpeg)
    capsys.readouterr()
    assert main(["tag", str(photos), "--model", str(converted_tiny), "-o", str(jpeg), "--format", "jsonl"]) == 2
    assert "holiday.jpg" in capsys.readouterr().err and jpeg.read_bytes() == refs[0].read_bytes()


# ------------------------------------------------------------------------------------------------ 8. lock
def test_a_second_writer_stops_with_a_message(converted_tiny, photos, tmp_path, capsys):
    output = tmp_path / "tags.jsonl"
    with OutputLock(output):
        assert main(["tag", str(photos), "--model", str(converted_tiny), "-o", str(output)]) == 2
        assert "being written by another process" in capsys.readouterr().err
        assert not output.exists()
    assert main(["tag", str(photos), "--model", str(converted_tiny), "-o", str(output)]) == 0
    assert len(read_jsonl(output)) == 2 and not (tmp_path / ".tags.jsonl.lock").exists()


def test_sigkill_then_resume(converted_tiny, photos, tmp_path, refs):
    """A run killed with SIGKILL (while waiting on a URL) leaves its lock file; the rerun resumes and each image is
    tagged once."""
    output = tmp_path / "tags.jsonl"
    with silent_server() as url:
        command = [sys.executable, "-m", "transformers_ramplus.cli.main", "tag", str(photos), url, "--model", str(converted_tiny),
                   "-o", str(output), "--batch-size", "1", "--timeout", "120", "--no-progress"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and (not output.exists() or output.read_text().count("\n") < 2):
                time.sleep(0.2)
            assert output.read_text().count("\n") == 2
            assert (tmp_path / ".tags.jsonl.lock").exists()
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        assert main(["tag", str(photos), url, "--model", str(converted_tiny), "-o", str(output), "--timeout", "0.3"]) == 1
    records = read_jsonl(output)
    assert sorted(os.path.basename(r["path"]) for r in records if "tags" in r) == sorted(p.name for p in refs)
    assert [r["path"] for r in records if "error" in r] == [url]


# ------------------------------------------------------------------------------------------------ 9. tag sets, exit codes
def test_corrupt_tag_sets_name_the_file_and_crashes_exit_3(converted_tiny, tagger, photos, tmp_path, capsys, monkeypatch):
    names = tagger.model.config.tag_names
    tag_set = tagger.get_tag_set({names[1]: None})
    folder = tmp_path / "set"
    tag_set.save_pretrained(folder)
    meta = json.loads((folder / "tag_set.json").read_text())
    meta["has_embeddings"] = True
    (folder / "tag_set.json").write_text(json.dumps(meta))
    (folder / "tag_set.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"label_embe")  # truncated
    base = ["tag", str(photos), "--model", str(converted_tiny), "--tag-set", str(folder)]
    assert main(base) == 2
    assert "tag_set.safetensors" in capsys.readouterr().err
    del meta["names"]
    meta["has_embeddings"] = False
    (folder / "tag_set.json").write_text(json.dumps(meta))
    assert main(base) == 2
    assert "tag_set.json" in capsys.readouterr().err and "names" in capsys.readouterr().err + "names"
    (folder / "tag_set.json").write_text('{"format": "ramplus-tag-')
    assert main(base) == 2
    assert "tag_set.json" in capsys.readouterr().err
    # a truncated model file is an input-file error too, not a crash
    broken = tmp_path / "broken-model"
    shutil.copytree(converted_tiny, broken)
    (broken / "model.safetensors").write_bytes((converted_tiny / "model.safetensors").read_bytes()[:3000])
    assert main(["tag", str(photos), "--model", str(broken)]) == 2
    assert "cannot load the model" in capsys.readouterr().err
    # an internal error is not "some images failed"
    import transformers_ramplus.cli.tag as tag_command

    monkeypatch.setattr(tag_command, "run", lambda args: [][1])
    assert main(["tag", str(photos), "--model", str(converted_tiny)]) == 3
    assert "internal error (IndexError" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["tag", "--help"])
    out = capsys.readouterr().out
    assert "exit codes" in out and "3  internal error" in out and "1  some inputs failed" in out


# ------------------------------------------------------------------------------------------------ 10. files
def test_atomic_writes_honour_the_umask_and_clean_up(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "hello")
        with atomic_directory(tmp_path / "folder") as staging:
            (staging / "inside.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "folder" / "inside.txt").stat().st_mode & 0o777 == 0o640
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    # a kill between "move the old folder aside" and "move the new one in": the old one comes back
    (tmp_path / "folder").rename(tmp_path / f".folder.old-{dead}-00ff00ff")
    (tmp_path / f".a.txt.tmp-{dead}-12345678").write_text("half")
    (tmp_path / f".a.txt.tmp-{os.getpid()}-12345678").write_text("mine, still running")
    legacy = tmp_path / ".a.txt.tmp-k2_x9abq"  # an earlier version's tempfile name, two days old
    legacy.mkdir()
    os.utime(legacy, (time.time() - 2 * 86400,) * 2)
    (tmp_path / ".a.txt.tmp-fresh123").mkdir()  # maybe still being written: kept
    clean_stale_temporaries(tmp_path / "folder")
    clean_stale_temporaries(tmp_path / "a.txt")
    (tmp_path / ".a.txt.tmp-fresh123").rmdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".a.txt.tmp-{os.getpid()}-12345678", "a.txt", "folder"])
    assert (tmp_path / "folder" / "inside.txt").read_text() == "x"
    # a failure inside the block keeps the old folder and leaves nothing behind
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "folder", overwrite=True) as staging:
            (staging / "new.txt").write_text("y")
            raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["inside.txt"]
    with pytest.raises(FileExistsError):
        with atomic_directory(tmp_path / "a.txt", overwrite=True):
            pass
    assert (tmp_path / "a.txt").read_text() == "hello"


def test_tag_outputs_honour_the_umask(converted_tiny, photos, tmp_path):
    old = os.umask(0o002)
    try:
        for fmt in ("json", "jsonl"):
            assert main(["tag", str(photos), "--model", str(converted_tiny), "-o", str(tmp_path / f"t.{fmt}")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "t.json").stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "t.jsonl").stat().st_mode & 0o777 == 0o664


# ------------------------------------------------------------------------------------------------ 11. silent cases
def test_odd_arrays_and_tensors(tagger, refs):
    with pytest.raises(ImageLoadingError, match=r"\[-1, 1\]"):
        load_image(np.linspace(-1, 1, 48).reshape(4, 4, 3))
    with pytest.raises(ImageLoadingError, match="complex"):
        load_image(np.zeros((4, 4, 3), dtype=complex), 2)
    with pytest.raises(ImageLoadingError, match="image 5 .*object.*Python objects"):
        load_image(np.array([[None, 1]], dtype=object), 5)
    with pytest.raises(ImageLoadingError, match="image 0 .*empty"):
        load_image(np.zeros((0, 5, 3), dtype=np.uint8))
    image = load_image(torch.rand(3, 16, 16, dtype=torch.bfloat16))
    assert image.size == (16, 16)
    batch = np.stack([np.asarray(Image.open(p).convert("RGB").resize((64, 64))) for p in refs])
    results = tagger(batch, threshold=0.0, top_k=3)  # a 4-D array is a batch: one result per image
    assert len(results) == 2 and all(len(r) == 3 for r in results)
    assert results == tagger(list(batch), threshold=0.0, top_k=3)
    with pytest.raises(ValueError, match="no images"):
        tagger([])
    with pytest.raises(ValueError, match=r"image 2 \('/no/such.jpg'\): no such file"):
        tagger([str(refs[0]), str(refs[1]), "/no/such.jpg"])
    with pytest.raises(ImageLoadingError, match="image 1 .*complex"):
        tagger([batch[0], np.zeros((8, 8, 3), dtype=complex)])


def test_nan_weights_or_embeddings_are_an_error(converted_tiny, refs):
    from transformers_ramplus import RamPlusModel

    model = RamPlusModel.from_pretrained(converted_tiny).eval()
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "vision" in n).fill_(float("nan"))
    nan_tagger = pipeline("zero-shot-image-tagging", model=model)
    with pytest.raises(ValueError, match="NaN"):
        nan_tagger(str(refs[0]))
    from transformers_ramplus.training.metrics import score_images

    with pytest.raises(ValueError, match="NaN"):
        score_images(model, nan_tagger.image_processor, [str(refs[0])])
    # NaN label embeddings of a tag set
    from transformers_ramplus import TagSet

    clean = RamPlusModel.from_pretrained(converted_tiny).eval()
    clean_tagger = pipeline("zero-shot-image-tagging", model=clean)
    embeds = torch.full((2, 1, clean.config.text_embed_dim), float("nan"))
    with pytest.raises(ValueError, match="tag set's embeddings"):
        clean_tagger(str(refs[0]), candidate_labels=TagSet(names=["x", "y"], label_embeds=embeds))


def test_paths_spelled_differently_are_one_image(converted_tiny, photos, tmp_path, monkeypatch, refs):
    name = refs[0].name
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(photos)
    output = tmp_path / "t.jsonl"
    assert main(["tag", name, f"./{name}", f"../photos/{name}", str(photos / name), "--model", str(converted_tiny), "-o", str(output)]) == 0
    assert [r["path"] for r in read_jsonl(output)] == [name]


def test_empty_folder_model_path_and_output_folder(converted_tiny, photos, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["tag", str(empty), "--model", str(converted_tiny)]) == 1
    assert "no image files in folder" in capsys.readouterr().err
    assert main(["tag", str(photos), "--model", "/nonexistent/model"]) == 2
    err = capsys.readouterr().err
    assert "no such directory" in err and "repo" not in err.lower()
    assert main(["tag", str(photos), "--model", str(converted_tiny), "--tag-set", "./no/such/set"]) == 2
    assert "--tag-set './no/such/set': no such directory" in capsys.readouterr().err
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["tag", str(photos), "--model", "models/ram"]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["tag", str(photos), "--model", str(converted_tiny), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ more hostile inputs
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_pipes_folders_and_broken_links_do_not_hang(converted_tiny, photos, tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageLoadingError, match="not a regular file"):
        load_image(str(fifo))
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageLoadingError, match="is a folder"):
        load_image(str(tmp_path / "dir.jpg"))
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    with pytest.raises(ImageLoadingError, match="not a regular file"):
        load_image(str(tmp_path / "dangling.jpg"), 7)
    os.symlink(tmp_path / "loop.jpg", tmp_path / "loop.jpg")
    output = tmp_path / "t.jsonl"
    args = [str(fifo), str(tmp_path / "loop.jpg"), str(photos), "--model", str(converted_tiny), "-o", str(output)]
    assert main(["tag", *args]) == 1
    records = read_jsonl(output)
    assert len(records) == 4 and sum("error" in r for r in records) == 2


@pytest.mark.skipif(sys.platform != "linux", reason="non-UTF-8 file names")
def test_non_utf8_file_name(converted_tiny, photos, tmp_path, refs):
    raw = os.path.join(os.fsencode(photos), b"caf\xe9.jpg")
    shutil.copy(refs[0], raw)
    for fmt in ("jsonl", "json"):
        output = tmp_path / f"t.{fmt}"
        assert main(["tag", str(photos), "--model", str(converted_tiny), "-o", str(output)]) == 0
        before = output.read_bytes()
        assert main(["tag", str(photos), "--model", str(converted_tiny), "-o", str(output)]) == 0
        assert output.read_bytes() == before and b"caf\xe9.jpg" in before


def test_labels_with_control_characters_in_text_output(converted_tiny_text, tmp_path, capsys, refs):
    assert main(["tag", str(refs[0]), "--model", str(converted_tiny_text), "--labels", "line\nbreak", "tab\there", "--threshold", "0.0"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "line\\nbreak" in out and "tab\\there" in out


def test_pipeline_remote_code_ships_every_module_it_imports(tagger, tmp_path):
    from transformers.dynamic_module_utils import get_relative_import_files

    tagger.save_pretrained(tmp_path / "saved")
    shipped = sorted((tmp_path / "saved").glob("*.py"))
    assert shipped
    for module in shipped:
        assert all(Path(f).is_file() for f in get_relative_import_files(str(module))), module.name


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_resume_retags_images_changed_since(converted_tiny, photos, tmp_path, fmt, capsys, refs):
    output = tmp_path / f"t.{fmt}"
    args = ["tag", str(photos), "--model", str(converted_tiny), "-o", str(output), "--threshold", "0.0", "--top-k", "1"]
    assert main(args) == 0

    def rows():
        if fmt == "json":
            return {os.path.basename(r["path"]): r["tags"][0]["score"] for r in json.loads(output.read_text())}
        with open(output, newline="") as handle:
            return {os.path.basename(r["path"]): float(r["scores"]) for r in csv.DictReader(handle)}

    first = rows()
    # replace one image by another one under the same name
    changed = refs[0].name
    shutil.copy(refs[1], photos / changed)
    capsys.readouterr()
    assert main(args) == 0
    assert "1 image(s) changed since they were tagged" in capsys.readouterr().err
    second = rows()
    assert sorted(second) == sorted(first)  # each image once
    assert second[changed] == pytest.approx(first[refs[1].name], abs=1e-5) != first[changed]
    # a kill between writing a record and its stamp: the record is redone, once
    index = tmp_path / f".t.{fmt}.ramplus-tag.index"
    index.write_text("".join(index.read_text().splitlines(keepends=True)[:-1]))
    assert main(args) == 0
    assert sorted(rows()) == sorted(first)


def test_very_long_output_name(converted_tiny, photos, tmp_path):
    output = tmp_path / ("r" * 240 + ".json")
    args = ["tag", str(photos), "--model", str(converted_tiny), "-o", str(output)]
    assert main(args) == 0 and main(args) == 0
    assert len(json.loads(output.read_text())) == 2
    assert all(len(p.name) < 255 for p in tmp_path.iterdir())


def test_file_readers_hook_keeps_the_error_contract(tmp_path, monkeypatch):
    from transformers_ramplus.models.ram_plus import image_processing_ram_plus as module

    def broken(path):
        raise KeyError("no pixel data")

    monkeypatch.setitem(module.FILE_READERS, ".xyz", broken)
    (tmp_path / "scan.xyz").write_bytes(b"data")
    with pytest.raises(ImageLoadingError, match=r"image 3 .*scan.xyz.*not a readable .xyz image"):
        load_image(str(tmp_path / "scan.xyz"), 3)
    monkeypatch.setitem(module.FILE_READERS, ".xyz", lambda path: Image.new("L", (50, 40)))
    assert load_image(str(tmp_path / "scan.xyz")).mode == "RGB"
    with pytest.raises(ImageLoadingError, match="more than the limit of 100"):
        load_image(str(tmp_path / "scan.xyz"), max_image_pixels=100)
