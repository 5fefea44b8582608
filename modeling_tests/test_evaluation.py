"""Metrics and benchmark readers against hand-computed values."""

import numpy as np
import pytest

from transformers_ramplus.training.metrics import (
    calibrate_thresholds,
    compute_metrics,
    f1_scores,
    mean_average_precision,
    precision_recall,
    read_annotations,
    read_tag_list,
    write_thresholds,
)

from conftest import tiny_config


SCORES = np.array([[0.9, 0.1, 0.5], [0.8, 0.4, 0.6], [0.7, 0.3, 0.2], [0.6, 0.2, 0.1]])
TARGETS = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])


def test_mean_average_precision_hand_computed():
    mean_ap, per_class = mean_average_precision(SCORES, TARGETS)
    # class 0: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2; class 1: ranks 0.4,0.3,0.2,0.1 -> positive at rank 3
    # -> (1/3) / 1; class 2: no positive -> 0 / (0 + 1e-8) = 0
    expected = np.array([(1 + 2 / 3) / 2, 1 / 3, 0.0])
    np.testing.assert_allclose(per_class, expected, rtol=1e-7)
    assert mean_ap == pytest.approx(expected.mean())
    # the 1e-8 of the denominator is there: one positive ranked first -> 1 / (1 + 1e-8)
    _, single = mean_average_precision(np.array([[0.9], [0.1]]), np.array([[1], [0]]))
    assert single[0] == 1 / (1 + 1e-8)


def test_precision_recall_and_f1_hand_computed():
    predictions = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0]])
    cp, cr, per_p, per_r = precision_recall(predictions, TARGETS)
    # class 0: tp 1, predicted 2, positives 2; class 1: tp 1 of 1 / 1; class 2: tp 0, predicted 1, positives 0
    np.testing.assert_allclose(per_p, [1 / (2 + 1e-9), 1 / (1 + 1e-9), 0.0])
    np.testing.assert_allclose(per_r, [1 / (2 + 1e-9), 1 / (1 + 1e-9), 0.0])
    assert cp == pytest.approx(0.5) and cr == pytest.approx(0.5)
    f1 = f1_scores(predictions, TARGETS)
    assert f1["CF1"] == pytest.approx(0.5)
    assert f1["OP"] == pytest.approx(2 / 4) and f1["OR"] == pytest.approx(2 / 3)
    assert f1["OF1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # thresholds (0.75, 0.35, 0.55) predict class 0 for images 0, 1 (tp 1 of 2), class 1 for image 1 (wrong) and
    # class 2 for image 1 (no positive) -> CP = CR = (0.5 + 0 + 0) / 3
    metrics = compute_metrics(SCORES, TARGETS, thresholds=[0.75, 0.35, 0.55])
    assert metrics["CP"] == pytest.approx(1 / 6) and metrics["CR"] == pytest.approx(1 / 6)
    assert metrics["mAP"] == pytest.approx(mean_average_precision(SCORES, TARGETS)[0])
    assert compute_metrics(SCORES, TARGETS, thresholds=0.85)["CP"] == pytest.approx(1 / 3)  # only 0.9 > 0.85
    with pytest.raises(ValueError, match="binary"):
        precision_recall(SCORES, TARGETS)
    with pytest.raises(ValueError, match="same shape"):
        mean_average_precision(SCORES[:, :2], TARGETS)


def test_readers_names_indices_and_duplicate_mapping(tmp_path):
    tags = tmp_path / "tags.txt"
    tags.write_text("cat\ndog\ncat\nbird\n")
    assert read_tag_list(tags) == ["cat", "dog", "cat", "bird"]
    names = tmp_path / "names.txt"
    names.write_text("a.jpg,cat\nb.jpg,dog,bird\nc.jpg\n")
    ann = read_annotations(names, tags)
    assert ann.format == "names" and ann.image_names == ["a.jpg", "b.jpg", "c.jpg"]
    # "cat" is on lines 0 and 2: both model classes get the target
    np.testing.assert_array_equal(ann.targets, [[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]])
    indices = tmp_path / "indices.txt"
    indices.write_text("a.jpg,2\nb.jpg,1 3\nc.jpg,\nd.jpg\n")
    ann = read_annotations(indices, tags)
    assert ann.format == "indices"
    np.testing.assert_array_equal(ann.targets, [[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    bad = tmp_path / "bad.txt"
    bad.write_text("a.jpg,cat\nb.jpg,unicorn\n")
    with pytest.raises(ValueError, match="unicorn"):
        read_annotations(bad, tags)
    assert read_annotations(bad, tags, on_unknown="skip").unknown_tags == {"unicorn": 1}
    with pytest.raises(ValueError, match="index 2 outside"):
        read_annotations(tmp_path / "indices.txt", ["cat"], format="indices")


def test_readers_on_the_shared_benchmark_files(shared_data_dir):
    bench = shared_data_dir / "benchmarks"
    tag_list = read_tag_list(bench / "imagenet_multi_1000_taglist.txt")
    assert len(tag_list) == 1000 and len(set(tag_list)) < 1000  # duplicated names exist
    ann = read_annotations(bench / "imagenet_multi_1000_annots_first50.txt", tag_list)
    assert ann.format == "indices" and ann.targets.shape == (50, 1000)
    assert ann.targets[0].sum() == 0  # the first image has no label
    duplicate = next(name for name in tag_list if tag_list.count(name) > 1)
    columns = [i for i, name in enumerate(tag_list) if name == duplicate]
    np.testing.assert_array_equal(ann.targets[:, columns[0]], ann.targets[:, columns[1]])
    ann = read_annotations(
        bench / "openimages_common_214_ram_annots_first50.txt", bench / "openimages_common_214_ram_taglist.txt"
    )
    assert ann.format == "names" and ann.targets.sum() >= 50


def test_calibrate_thresholds_maximizes_f1_and_writes_config():
    scores = np.array([[0.9, 0.2, 0.3], [0.6, 0.8, 0.1], [0.405, 0.7, 0.2], [0.2, 0.1, 0.9]])
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    thresholds, best_f1 = calibrate_thresholds(scores, targets, default=[0.6, 0.6, 0.77])
    # class 0: positives 0.9, 0.6; negatives 0.405, 0.2 -> smallest t with F1 1 is 0.41 (score > t)
    # class 1: positives 0.8, 0.7; negatives 0.2, 0.1 -> 0.20; class 2 has no positive -> keeps its default
    np.testing.assert_allclose(thresholds, [0.41, 0.20, 0.77])
    np.testing.assert_allclose(best_f1, [1.0, 1.0, 0.0], atol=1e-8)
    config = tiny_config(num_tags=5)
    write_thresholds(config, thresholds, tag_indices=[4, 0, 2])
    assert config.tag_thresholds == pytest.approx([0.2, config.default_threshold, 0.77, config.default_threshold, 0.41])
    with pytest.raises(ValueError, match="thresholds"):
        write_thresholds(config, [1.5], tag_indices=[0])


def test_evaluate_module_loads_offline(monkeypatch):
    import evaluate

    from transformers_ramplus.training import evaluate_metric as metrics_package

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    path = str(__import__("pathlib").Path(metrics_package.__file__).parent / "ramplus_tagging")
    metric = evaluate.load(path)
    result = metric.compute(predictions=SCORES.tolist(), references=TARGETS.tolist(), threshold=[0.75, 0.35, 0.55])
    assert result["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 3)
    assert result["CP"] == pytest.approx(1 / 6) and result["CR"] == pytest.approx(1 / 6)
