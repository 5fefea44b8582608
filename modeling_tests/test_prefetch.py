"""Tagging folders as fast as the model (issue 25): the reader thread of `tag_batches` (reads and resizes the next
batch while the model tags this one), the image processor's `resize_ahead` (the same pixel values as its own
resize), and the GPU benchmark's paths in a CPU smoke run."""

import importlib.util
import json
import os
import sys
import threading
from pathlib import Path

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

    one = run(1)
    names.clear()
    several = run(3)
    assert len({name for name in names if name.startswith("ramplus-read")}) > 1  # read by several threads
    assert [t.index for t in several] == [t.index for t in one] == list(range(len(items)))
    assert [t.error is None for t in several] == [True, False, True, True, True, False, True]
    assert several[1].error == one[1].error and "bad.jpg" in several[5].error
    for threaded, plain in zip(several, one):
        if plain.error is None:
            assert [(t["label"], t["score"]) for t in threaded.result] == [(t["label"], t["score"]) for t in plain.result]
            assert threaded.image.size == Image.open(items[threaded.index]).size
    assert not {t.name for t in threading.enumerate() if t.name.startswith("ramplus-read")}  # the pool ended
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
        "--e2e-feeds", "uint8,fastboth",
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
    assert rows["e2e_tag_bf16_b2_fastboth"]["images_per_s"] > 0  # --fast-decode --fast-resize
    assert "e2e_loader_fp16_b1" not in rows  # the pipeline runs fp32/bf16
    assert "img/s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--tiny", "--precisions", "int4"])


def test_reading_benchmark_smoke(tmp_path, capsys):
    bench = _load("bench_read")
    output = tmp_path / "read.json"
    assert bench.main(["--num-images", "2", "--sizes", "640x480", "--rounds", "1", "--threads", "1", "--output", str(output)]) == 0
    row = json.loads(output.read_text())["sizes"]["640x480"]
    assert set(row) == {"exact", "fast_resize", "fast_decode", "fast_both"}
    assert row["exact"]["identical_pixel_values"] == 1.0 and row["exact"]["speedup_vs_exact"] == 1.0
    assert row["fast_resize"]["max_difference"] <= 1  # torch's resize: within one grey level of PIL's
    assert all(values["ms_per_image_one_thread"] > 0 and values["images_per_s_threads"] > 0 for values in row.values())
    assert "ms/img" in capsys.readouterr().out


def _emulates_bf16():
    from transformers_ramplus.inference.precision import cpu_precision_support

    return cpu_precision_support()["bf16"] == "emulated"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_uint8_batches_normalized_by_torch_equal_the_processors_call():
    rng = np.random.default_rng(1)
    images = [load_image(path) for path in IMAGES]
    images.append(Image.fromarray(rng.integers(0, 256, (700, 500, 3), dtype=np.uint8)))
    settings = [
        {},
        {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3]},
        {"image_mean": 0.5, "image_std": 0.5},
        {"do_normalize": False},
        {"do_rescale": False, "do_normalize": False},
        {"size": {"height": 224, "width": 160}, "rescale_factor": 1 / 127.5},
    ]
    for setting in settings:
        processor = RamPlusImageProcessor(**setting)
        assert processor.supports_uint8_batches(), setting
        resized = [processor.resize_ahead(image) for image in images]
        batch = torch.from_numpy(np.stack([np.asarray(image) for image in resized]))
        got = processor.pixel_values_from_uint8(batch)
        want = processor(images, return_tensors="pt")["pixel_values"]
        assert got.dtype == want.dtype and got.shape == want.shape, setting
        assert torch.equal(got, want), setting  # bit for bit
    with pytest.raises(ValueError, match=r"uint8 images \(batch, 384, 384, 3\)"):
        RamPlusImageProcessor().pixel_values_from_uint8(torch.zeros(1, 384, 384, 3))  # floats
    with pytest.raises(ValueError, match=r"uint8 images"):
        RamPlusImageProcessor().pixel_values_from_uint8(torch.zeros(1, 3, 384, 384, dtype=torch.uint8))  # CHW
    # settings the torch arithmetic does not cover are left to the processor's call
    assert not RamPlusImageProcessor(size={"shortest_edge": 384}).supports_uint8_batches()
    assert not RamPlusImageProcessor(do_resize=False).supports_uint8_batches()
    assert not RamPlusImageProcessor(do_center_crop=True, crop_size={"height": 300, "width": 300}).supports_uint8_batches()

    class Custom(RamPlusImageProcessor):
        def normalize(self, image, mean, std, **kwargs):
            return super().normalize(image, mean, std, **kwargs) * 2

    assert not Custom().supports_uint8_batches()
    with pytest.raises(ValueError, match="supports_uint8_batches"):
        Custom().pixel_values_from_uint8(batch)


def _pipeline_results(tagger, groups, **options):
    """The pipeline's own call on each group of items (the batches `tag_batches` forms): the reference results."""
    results = []
    for group in groups:
        images = [tagger.image_processor.load_image(item) for item in group]
        results.extend(tagger(images, batch_size=len(images), **options))
    return results


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"threshold": 0.0, "top_k": 5, "language": "zh"},
        {"candidate_labels": "builtin-subset", "threshold": 0.0},
        {"raw_scores": True},
        {"tag_map": {"rename": {}, "drop": []}, "threshold": 0.0, "top_k": 4},
    ],
    ids=["builtin", "zh-top-k", "subset", "raw-scores", "tag-map"],
)
def test_tag_batches_uint8_feed_equals_the_pipeline(tagger, tmp_path, options):
    from transformers_ramplus.inference.tagging import _uint8_feed_size

    assert _uint8_feed_size(tagger) == (tagger.image_processor.size["height"], tagger.image_processor.size["width"])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    items = [IMAGES[0], str(bad), IMAGES[1], IMAGES[1], IMAGES[0]]
    calls = []
    original = tagger.tag_logits

    def counting(pixel_values, tag_set=None):
        calls.append(pixel_values.shape[0])
        return original(pixel_values, tag_set)

    options = dict(options)
    labels = options.pop("candidate_labels", None)
    if labels == "builtin-subset":  # some of the built-in tags (this model has no text tower for new ones)
        labels = list(tagger.model.config.id2label.values())[3:40:3]
    batch_options = dict(options, tag_set=labels)
    tagger.tag_logits = counting
    try:
        got = [t for batch in tag_batches(tagger, items, batch_size=2, **batch_options) for t in batch]
    finally:
        del tagger.tag_logits
    assert calls == [1, 2, 1]  # the fed path ran (the broken file was left out of its batch)
    want = _pipeline_results(tagger, [items[:1], items[2:4], items[4:]], candidate_labels=labels, **options)
    assert [t.error is None for t in got] == [True, False, True, True, True]
    for tagged, expected in zip([t for t in got if t.error is None], want):
        if options.get("raw_scores"):
            assert torch.equal(tagged.result, expected)
        else:
            assert tagged.result == expected  # the same labels and the same float scores


def test_running_ahead_yields_in_order_after_launching_the_next_batch(tagger, monkeypatch):
    """The CUDA schedule (start batch n+1, then finish and yield batch n), run on the CPU."""
    from transformers_ramplus.inference import tagging

    monkeypatch.setattr(tagging, "_runs_ahead", lambda device: True)
    events = []
    original = tagger.tag_logits

    def launching(pixel_values, tag_set=None):
        events.append(("launch", pixel_values.shape[0]))
        return original(pixel_values, tag_set)

    items = [IMAGES[0], IMAGES[1], IMAGES[0], IMAGES[1], IMAGES[0]]
    tagger.tag_logits = launching
    try:
        ahead = []
        for batch in tag_batches(tagger, items, batch_size=2, threshold=0.0, top_k=3, keep_images=False):
            events.append(("yield", len(batch)))
            ahead.extend(batch)
    finally:
        del tagger.tag_logits
    assert events == [("launch", 2), ("launch", 2), ("yield", 2), ("launch", 1), ("yield", 2), ("yield", 1)]
    monkeypatch.setattr(tagging, "_runs_ahead", lambda device: False)
    plain = [t for batch in tag_batches(tagger, items, batch_size=2, threshold=0.0, top_k=3) for t in batch]
    assert [t.result for t in ahead] == [t.result for t in plain]
    assert all(t.image is None for t in ahead) and all(t.image is not None for t in plain)  # keep_images


def test_reading_processes_give_the_threads_results(tagger, tmp_path):
    """`read_processes`: the same results and errors as threads, in order; what it refuses."""
    import functools

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    items = [IMAGES[0], str(bad), IMAGES[1], IMAGES[1], IMAGES[0]]
    read = functools.partial(load_image, apply_exif_orientation=True)
    seen = []
    options = {"threshold": 0.0, "top_k": 4, "batch_size": 2, "read": read, "keep_images": False}
    threads = [t for batch in tag_batches(tagger, items, **options) for t in batch]
    processes = [t for batch in tag_batches(tagger, items, read_processes=2, before_read=seen.append, **options) for t in batch]
    assert seen == list(range(len(items)))  # each item noted in this thread before it was handed to a reader
    assert [t.index for t in processes] == list(range(len(items)))
    assert [t.error is None for t in processes] == [True, False, True, True, True]
    assert processes[1].error == threads[1].error and "bad.jpg" in processes[1].error
    assert [t.result for t in processes] == [t.result for t in threads]
    assert all(t.image is None for t in processes)
    with pytest.raises(ValueError, match="keep_images=False"):
        next(tag_batches(tagger, items, read=read, read_processes=2))
    with pytest.raises(ValueError, match="pickles"):
        next(tag_batches(tagger, items, read=lambda item, index: load_image(item), read_processes=2, keep_images=False))
    with pytest.raises(ValueError, match="read_processes"):
        next(tag_batches(tagger, items, read_processes=-1, keep_images=False))


def test_a_reading_process_that_dies_stops_the_run_with_a_clear_error(tagger, tmp_path):
    from reading_helpers import crash_on_marked

    crash = tmp_path / "crash.jpg"
    crash.write_bytes(Path(IMAGES[0]).read_bytes())
    items = [IMAGES[0], str(crash), IMAGES[1], IMAGES[1]]
    with pytest.raises(RuntimeError, match="a reading process died") as raised:
        for _ in tag_batches(tagger, items, batch_size=2, read=crash_on_marked, read_processes=2, keep_images=False):
            pass
    assert "rerun to resume" in str(raised.value)
