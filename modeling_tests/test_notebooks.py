"""The example notebooks (`notebooks/`): each runs end to end on the tiny local models without errors, stderr or
warnings and draws pictures; the committed files are their sources, executed, with no machine paths."""

import importlib.util
import re

import pytest

from conftest import PROJECT_ROOT


for module in ("nbformat", "nbclient", "ipykernel", "matplotlib"):
    pytest.importorskip(module, reason="the `notebooks` extra (pip install -e '.[notebooks]', done by `make test`)")

import nbformat  # noqa: E402


NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
_spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS_DIR / "build_notebooks.py")
build_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_notebooks)
NAMES = build_notebooks.notebook_names()
# absolute paths of this machine, a user's home, the scratch folders of tiny_models, an interpreter's packages
MACHINE_PATH = re.compile(
    r"(/tmp/|/var/folders/|/work/|/home/|/root/|/Users/|site-packages|ramplus-notebook-|[A-Za-z]:\\\\|"
    + re.escape(str(PROJECT_ROOT))
    + ")"
)


def output_text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return "\n".join(str(value) for key, value in data.items() if key.startswith("text/") or key.endswith("json"))


def check_outputs(notebook, name: str) -> None:
    pictures = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        where = f"{name}, cell {index}"
        assert cell.execution_count is not None, f"{where} was not executed"
        for output in cell.outputs:
            assert output.output_type != "error", f"{where}: {output.get('ename')}: {output.get('evalue')}"
            text = output_text(output)
            assert not (output.output_type == "stream" and output.name == "stderr"), f"{where} wrote to stderr: {text}"
            assert "Warning" not in text, f"{where} shows a warning: {text[:500]}"
            data = output.get("data", {})
            assert not any("widget" in key for key in data), f"{where} shows a progress-bar widget"
            found = MACHINE_PATH.search(text)
            assert found is None, f"{where} shows a machine path ({found.group(0)!r}): {text[:300]}"
            pictures += any(key in data for key in ("image/png", "image/jpeg"))
    assert pictures >= 1, f"{name} shows no picture"


# the real model each notebook names in its introduction
REAL_MODEL = {"06_ram.ipynb": "xinyu1205/recognize_anything_model", "07_tag2text.ipynb": "tag2text_swin_14m.pth"}


def test_the_notebooks_are_committed():
    assert NAMES == [
        "01_tag_images.ipynb",
        "02_open_set.ipynb",
        "03_lora_finetuning.ipynb",
        "04_heatmaps.ipynb",
        "05_evaluation.ipynb",
        "06_ram.ipynb",
        "07_tag2text.ipynb",
    ]
    assert sorted(path.name for path in NOTEBOOKS_DIR.glob("*.ipynb")) == NAMES  # no notebook without a source


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_its_source_executed(name):
    committed = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    expected = build_notebooks.read_cells(build_notebooks.SOURCES / name.replace(".ipynb", ".py"))
    assert [(cell.cell_type, cell.source) for cell in committed.cells] == expected, (
        f"{name} differs from notebooks/src/: run `make notebooks`"
    )
    check_outputs(committed, name)
    introduction = committed.cells[0].source
    assert "random-weight" in introduction and "change one line" in introduction
    assert REAL_MODEL.get(name, "xinyu1205/recognize-anything-plus-model") in introduction
    assert "MODEL = " in committed.cells[1].source and "the real model: MODEL =" in committed.cells[1].source


@pytest.mark.slow  # executes the seven notebooks: ~2.5 CPU-minutes (`make test-docs`, CI)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_cleanly(name):
    """Each notebook from its source, in a fresh kernel, on the tiny local models (seconds to a minute)."""
    check_outputs(build_notebooks.build(name), name)
