"""Tagging folders as fast as the model (issue 25): the reader thread of `tag_batches` (reads and resizes the next
batch while the model tags this one), the image processor's `resize_ahead` (the same pixel values as its own
resize), and the GPU benchmark's paths in a CPU smoke run."""

import importlib.util
import json
import os
import sys
import threading

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, REFERENCE_IMAGES
from PIL import Image

from transformers_ramplus.inference.tagging import load_tagger, tag_batches
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor, load_image


IMAGES = [str(path) for path in REFERENCE_IMAGES]


@pytest.fixture(scope="module")
def tagger(converted_tiny):
    return load_tagger(str(converted_tiny), device="cpu", precision="fp32")[0]


def test_resize_ahead_gives_the_processors_own_pixel_values():
    processor = RamPlusImageProcessor()
    rng = np.random.default_rng(0)
    images = [load_image(path) for path in IMAGES]
    images.append(Image.fromarray(rng.integers(0, 256, (1000, 1500, 3), dtype=np.uint8)))  # a big, noisy photo
    images.append(Image.fromarray(rng.integers(0, 256, (200, 90, 3), dtype=np.uint8)))  # smaller than 384: upscaled
    for image in images:
        ahead = processor.resize_ahead(image)
        assert ahead.size == (384, 384)
        want = processor(image, return_tensors="pt")["pixel_values"]
        got = processor(ahead, return_tensors="pt")["pixel_values"]
        assert (want == got).all()  # bit for bit
    gray = Image.new("L", (500, 400))
    array = np.zeros((500, 400, 3), dtype=np.uint8)
    assert processor.resize_ahead(gray) is gray and processor.resize_ahead(array) is array  # left to the processor
    odd = RamPlusImageProcessor(size={"height": 96, "width": 128})
    assert odd.resize_ahead(images[0]).size == (128, 96)


def test_prefetch_reads_the_next_batch_while_the_model_runs(tagger, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    items = [IMAGES[0], str(bad), IMAGES[1], IMAGES[0], IMAGES[1]]
    threads, next_batch_started = [], threading.Event()

    def read(item, index):
        threads.append(threading.current_thread().name)
        if index >= 2:
            next_batch_started.set()
        return tagger.image_processor.load_image(item, index)

    class Watching:  # the pipeline, checking that batch 2's reading began while batch 1 was being tagged
        image_processor = tagger.image_processor
        overlapped = []

        def __call__(self, images, **kwargs):
            if not self.overlapped:
                self.overlapped.append(next_batch_started.wait(timeout=30))
            return tagger(images, **kwargs)

    watching = Watching()
    prefetched = [t for batch in tag_batches(watching, items, threshold=0.0, top_k=3, batch_size=2, read=read) for t in batch]
    assert watching.overlapped == [True]
    assert all(name.startswith("ramplus-read") for name in threads)
    threads.clear()
    serial = [t for batch in tag_batches(tagger, items, threshold=0.0, top_k=3, batch_size=2, read=read, prefetch=False) for t in batch]
    assert threads and all(name == threading.current_thread().name for name in threads)
    assert [t.index for t in prefetched] == [t.index for t in serial] == list(range(5))
    assert [t.error is None for t in prefetched] == [True, False, True, True, True]
    assert "bad.jpg" in prefetched[1].error and prefetched[1].error == serial[1].error
    for fast, plain in zip(prefetched, serial):
        if fast.error is None:
            assert [t["label"] for t in fast.result] == [t["label"] for t in plain.result]
            assert np.allclose([t["score"] for t in fast.result], [t["score"] for t in plain.result], atol=0)
            assert fast.image.size == Image.open(items[fast.index]).size  # the image as read (heatmaps draw on it)


def test_stopping_early_ends_the_reader(tagger):
    before = {thread.name for thread in threading.enumerate()}
    batches = tag_batches(tagger, IMAGES * 4, batch_size=2)
    first = next(batches)
    assert len(first) == 2
    batches.close()  # the consumer stops (e.g. an error while writing): the reader finishes, nothing hangs
    leftover = {t.name for t in threading.enumerate() if t.name.startswith("ramplus-read")} - before
    assert not leftover


def test_several_read_threads_keep_every_result_in_its_place(tagger, tmp_path):
    from types import SimpleNamespace

    from transformers_ramplus.inference.tagging import default_read_threads

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    items = [IMAGES[1], str(bad), IMAGES[0], IMAGES[0], IMAGES[1], str(bad), IMAGES[1]]
    names = []

    def read(item, index):
        names.append(threading.current_thread().name)
        return tagger.image_processor.load_image(item, index)

    def run(read_threads):
        return [t for batch in tag_batches(tagger, items, threshold=0.0, top_k=3, batch_size=4, read=read,
                                           read_threads=read_threads) for t in batch]

    one, several = run(1), run(3)
    assert any(name.startswith("ramplus-decode") for name in names)  # the batch's images were read by the pool
    assert [t.index for t in several] == [t.index for t in one] == list(range(len(items)))
    assert [t.error is None for t in several] == [True, False, True, True, True, False, True]
    assert several[1].error == one[1].error and "bad.jpg" in several[5].error
    for threaded, plain in zip(several, one):
        if plain.error is None:
            assert [(t["label"], t["score"]) for t in threaded.result] == [(t["label"], t["score"]) for t in plain.result]
            assert threaded.image.size == Image.open(items[threaded.index]).size
    assert not {t.name for t in threading.enumerate() if t.name.startswith("ramplus-decode")}  # the pool ended
    with pytest.raises(ValueError, match="read_threads"):
        next(tag_batches(tagger, items, read_threads=0))
    assert default_read_threads(tagger) == 1  # the model on the CPU: its threads use the cores
    assert default_read_threads(SimpleNamespace(device=torch.device("cuda", 0))) > 1 or (os.cpu_count() or 1) == 1


def _load(name):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_smoke_on_the_cpu(tmp_path, capsys, monkeypatch):
    from transformers_ramplus.inference import precision as prec

    # the emulation warning is once per process: an earlier test may have spent it
    monkeypatch.setattr(prec, "_WARNED", set())
    bench = _load("bench_gpu")
    output = tmp_path / "gpu.json"
    argv = [
        "--device", "cpu", "--tiny", "--batch-sizes", "1,2", "--num-images", "2", "--width", "96", "--height", "64",
        "--precisions", "fp32,bf16,fp16", "--repeats", "1", "--workers", "1", "--output", str(output), "--threads", "1",
    ]
    threads = torch.get_num_threads()
    with pytest.warns(UserWarning, match="emulated") if _emulates_bf16() else _nothing():
        try:
            assert bench.main(argv) == 0
        finally:
            torch.set_num_threads(threads)
    rows = json.loads(output.read_text())["rows"]
    for label in ("model_fp32_b1", "model_bf16_b2", "model_fp16_b1", "e2e_loader_fp32_b2", "e2e_tag_bf16_b1"):
        assert rows[label]["images_per_s"] > 0, label
    assert 0.5 <= rows["model_bf16_b1"]["identical_decisions_vs_fp32"] <= 1.0
    assert "e2e_loader_fp16_b1" not in rows  # the pipeline runs fp32/bf16
    assert "img/s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--tiny", "--precisions", "int4"])


def _emulates_bf16():
    from transformers_ramplus.inference.precision import cpu_precision_support

    return cpu_precision_support()["bf16"] == "emulated"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
