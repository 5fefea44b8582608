"""The one reader of tag files (tag lists, Chinese names, thresholds) and the one check of thresholds/languages."""

import math

import pytest
import torch

from transformers_ramplus.cli.main import main
from transformers_ramplus.models.ram_plus.configuration_ram_plus import validate_language, validate_threshold, validate_thresholds
from transformers_ramplus.tags.files import read_tag_list, read_thresholds

from conftest import TINY_DIR


def test_reads_one_tag_per_line(tmp_path):
    path = tmp_path / "tags.txt"
    path.write_bytes("\ufeffcat\n  dog  \r\n三维CG渲染 \ncat\n\n\n".encode("utf-8"))  # BOM, CRLF, padding, duplicate
    assert read_tag_list(path) == ["cat", "dog", "三维CG渲染", "cat"]  # trailing blank lines ignored
    path.write_text("# mine\ncat\n#dog\nbird\n")
    assert read_tag_list(path, comments=True) == ["cat", "bird"]
    assert read_tag_list(path) == ["# mine", "cat", "#dog", "bird"]  # a tag list has no comments


def test_blank_lines_inside_are_rejected_with_file_and_line(tmp_path):
    path = tmp_path / "tags.txt"
    path.write_text("cat\n\ndog\n")
    with pytest.raises(ValueError, match=r"tags\.txt.*blank line 2"):
        read_tag_list(path)
    path.write_text("cat\n   \ndog\n")  # whitespace only counts as blank
    with pytest.raises(ValueError, match="blank line 2"):
        read_tag_list(path, comments=True)


def test_non_utf8_missing_and_empty_files_name_the_file(tmp_path):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9\nna\xefve\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt.*not UTF-8.*line 1"):
        read_tag_list(latin)
    with pytest.raises(ValueError, match=r"missing\.txt"):
        read_tag_list(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match=r"empty\.txt.*no tag"):
        read_tag_list(empty)


def test_threshold_files(tmp_path):
    assert len(read_thresholds(TINY_DIR / "ram_tag_list_threshold.txt")) == 37
    path = tmp_path / "thresholds.txt"
    for text, message in (("0.5\nabc\n", "line 2: not a number"), ("0.5\nnan\n", "line 2.*nan"), ("1.5\n", "line 1.*1.5")):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_thresholds(path)
    path.write_text("0\n1\n0.68\n")
    assert read_thresholds(path) == [0.0, 1.0, 0.68]


def test_conversion_reports_a_bad_tag_list(tmp_path):
    tags = tmp_path / "tags.txt"
    lines = (TINY_DIR / "ram_tag_list.txt").read_text(encoding="utf-8").splitlines()
    tags.write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n", encoding="utf-8")
    code = main(["convert", str(TINY_DIR / "ram_plus_original.pth"), str(tmp_path / "out"), "--tag-list", str(tags)])
    assert code != 0 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", [float("nan"), -0.01, 1.01, math.inf])
def test_thresholds_out_of_range_are_rejected_with_the_value(value):
    with pytest.raises(ValueError, match="must be a number in \\[0, 1\\], got"):
        validate_threshold(value)
    with pytest.raises(ValueError, match=r"thresholds\[1\]"):
        validate_thresholds([0.5, value])


def test_threshold_and_language_checks_accept_what_they_should():
    assert validate_threshold(0) == 0.0 and validate_threshold(1) == 1.0
    assert validate_thresholds(torch.tensor([0.25, 0.75])) == [0.25, 0.75]
    for bad in (True, "0.5", None):
        with pytest.raises(TypeError):
            validate_threshold(bad)
    assert validate_language("zh") == "zh"
    with pytest.raises(ValueError, match="'fr'"):
        validate_language("fr")


def test_cli_rejects_a_nan_threshold(converted_tiny, capsys):
    from conftest import REFERENCE_IMAGES

    assert main(["tag", str(REFERENCE_IMAGES[0]), "--model", str(converted_tiny), "--threshold", "nan"]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_metrics_reject_a_nan_threshold():
    from transformers_ramplus.training.metrics import compute_metrics

    scores, targets = [[0.9, 0.2]], [[1, 0]]
    assert compute_metrics(scores, targets, 0.5)["CP"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="nan"):
        compute_metrics(scores, targets, float("nan"))
    with pytest.raises(ValueError, match=r"thresholds\[1\]"):
        compute_metrics(scores, targets, [0.5, 2.0])
