"""Build and execute the example notebooks; the outputs (pictures included) are stored in the .ipynb files.

    python notebooks/build_notebooks.py              # all notebooks (what `make notebooks` runs)
    python notebooks/build_notebooks.py heatmaps     # those whose name contains "heatmaps"

The source of every notebook is a percent-format script in `notebooks/src/` (the format jupytext reads): a line
`# %%` starts a code cell, `# %% [markdown]` a markdown cell whose lines start with `# `. Each notebook is executed
in `notebooks/` (so that `import tiny_models` finds the helper module) with a fresh kernel, and written only when it
ran without errors. Needs the `notebooks` extra (`pip install -e ".[notebooks]"`: nbformat, nbclient, ipykernel,
ipywidgets, matplotlib). `modeling_tests/test_notebooks.py` executes the same sources and checks the committed files.
"""

from __future__ import annotations

import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
TIMEOUT_S = 300  # per cell


def notebook_names() -> list[str]:
    """The notebooks, by source file: `src/01_tag_images.py` -> `01_tag_images.ipynb`."""
    return sorted(path.stem + ".ipynb" for path in SOURCES.glob("[0-9]*.py"))


def read_cells(source: Path) -> list[tuple[str, str]]:
    """The `(kind, text)` cells of a percent-format script."""
    cells: list[tuple[str, list[str]]] = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif cells:
            kind, lines = cells[-1]
            if kind == "markdown":
                line = line[2:] if line.startswith("# ") else line.lstrip("#")
            lines.append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells if "\n".join(lines).strip()]


def build(name: str, timeout: int = TIMEOUT_S):
    """The notebook `name` built from its source and executed (an `nbformat` notebook; raises on a failing cell)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    for kind, text in read_cells(SOURCES / (Path(name).stem + ".py")):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(text))
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"  # stable ids: rebuilding an unchanged notebook changes nothing but outputs
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(HERE)}}
    )
    client.execute()
    notebook.metadata["language_info"] = {"name": "python"}  # no interpreter version in the committed files
    return notebook


def write(notebook, target: Path) -> None:
    import nbformat

    temporary = target.with_name(f".{target.name}.tmp")
    nbformat.write(notebook, temporary)
    temporary.replace(target)


def main(argv=None) -> int:
    patterns = (argv if argv is not None else sys.argv[1:]) or [""]
    for name in notebook_names():
        if any(pattern in name for pattern in patterns):
            write(build(name), HERE / name)
            sys.stdout.write(f"executed notebooks/{name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
