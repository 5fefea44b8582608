"""What a `ramplus` user sees on stderr: one progress bar per long step (none in a log file), one summary line, each
warning once, no library deprecation noise, and one-line errors. The documentation test (`test_docs_code.py`) also
checks the output of every `ramplus` command the README and the documentation pages run
(`test_documented_commands_print_no_library_noise`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import IMAGES_DIR

from transformers_ramplus.cli.main import main


def _run(args, cwd, **env):
    """`ramplus ARGS` in a child process with stderr a pipe (as in a log file or CI), offline."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "transformers_ramplus.cli.main", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=environment,
    )


def test_tag_prints_the_skipped_file_and_one_summary_line(converted_tiny, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    image = str(IMAGES_DIR / "demo2.jpg")
    for extra in (["--no-progress"], []):  # no bar with --no-progress, nor when stderr is not a terminal
        done = _run(["tag", image, "broken.jpg", "--model", str(converted_tiny), *extra], cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines() == [
            "ramplus tag: skipped image 1 ('broken.jpg'): not a readable image: the format is not recognized",
            "tagged 1 image(s), 1 failed, 0 skipped (already done)",
        ], done.stderr
        assert done.stdout.startswith(image)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA build with a GPU accepts --device cuda")
def test_device_cuda_on_a_cpu_build_is_a_one_line_usage_error(converted_tiny, capsys):
    code = main(["tag", str(IMAGES_DIR / "demo2.jpg"), "--model", str(converted_tiny), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        f"ramplus tag: error: --device 'cuda': this torch build ({torch.__version__}) has no CUDA support; "
        "use --device cpu"
    ], err
    assert main(["tag", str(IMAGES_DIR / "demo2.jpg"), "--model", str(converted_tiny), "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ramplus tag: error: --device 'gpu' is not a torch device") and "Traceback" not in err


SCRIPT = textwrap.dedent(
    """
    import logging, sys, warnings
    from transformers_ramplus.cli.main import configure_output
    configure_output(verbose=sys.argv[1] == "verbose")
    import transformers
    logging.getLogger("huggingface_hub.file_download").warning("hub says: the download was resumed")
    logging.getLogger("transformers_ramplus.hub").warning("ramplus says: converted once")
    transformers.logging.get_logger("transformers.modeling_utils").warning("Some weights were newly initialized")
    logging.getLogger("torch.onnx._internal.exporter._registration").warning("torchvision is not installed")
    warnings.warn("`old_name` is deprecated", FutureWarning)
    warnings.warn("your images are tiny", UserWarning)
    from transformers.utils import logging as transformers_logging
    print("bars:", transformers_logging.is_progress_bar_enabled())
    """
)


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_each_warning_once_and_only_the_users_own(tmp_path, mode):
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    # warnings about the user's model, data or download show, each exactly once
    for message in ("hub says", "ramplus says", "Some weights were newly initialized", "your images are tiny"):
        assert err.count(message) == 1, (message, err)
    # library noise only with --verbose
    noisy = ("is deprecated", "torchvision is not installed")
    if mode == "quiet":
        assert not [message for message in noisy if message in err], err
        assert "bars: False" in done.stdout  # transformers' "Loading weights" bar is off
    else:
        assert all(message in err for message in noisy), err
