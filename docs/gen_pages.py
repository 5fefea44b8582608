"""Build-time pages of the documentation site (run by mkdocs-gen-files; nothing here is written to the repository).
The other pages are written by hand in `docs/`.

- `api/*.md`: one page per public object of `transformers_ramplus` (its `__all__`) and per public module, rendered
  from the docstrings by mkdocstrings;
- `notebooks/*.ipynb`: the executed notebooks, rendered with their outputs (pictures included) by mkdocs-jupyter.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# public modules documented as a whole (besides the objects exported by the package itself)
API_MODULES = [
    "transformers_ramplus.tags.tag_set",
    "transformers_ramplus.models.ram_plus.processing_ram_plus",
    "transformers_ramplus.models.ram_plus.image_processing_ram_plus",
    "transformers_ramplus.training.metrics",
    "transformers_ramplus.training.trainer",
    "transformers_ramplus.training.data",
    "transformers_ramplus.training.losses",
    "transformers_ramplus.training.adapters",
    "transformers_ramplus.models.ram_plus.convert_ram_plus",
    "transformers_ramplus.hub",
    "transformers_ramplus.inference.onnx",
    "transformers_ramplus.io.dicom",
    "transformers_ramplus.io.atomic",
    "transformers_ramplus.tags.tag_map",
    "transformers_ramplus.io.keywords",
    "transformers_ramplus.io.xmp",
    "transformers_ramplus.inference.caption_files",
    "transformers_ramplus.models.remote_code",
    "transformers_ramplus.models.tag2text.modeling_tag2text_text",
    "transformers_ramplus.models.tag2text.processing_tag2text",
    "transformers_ramplus.models.tag2text.convert_tag2text",
    "transformers_ramplus.training.captioning",
]


def public_names() -> list[str]:
    """`__all__` of the package as written in src/ (the tree mkdocstrings documents, not an installed copy)."""
    tree = ast.parse((ROOT / "src" / "transformers_ramplus" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise ValueError("src/transformers_ramplus/__init__.py defines no literal __all__")


def api_pages() -> None:
    import mkdocs_gen_files  # the docs extra: present when mkdocs runs this file, not needed to import it

    names = public_names()
    with mkdocs_gen_files.open("api/index.md", "w") as handle:
        handle.write("# API reference\n\nGenerated from the docstrings.\n\n## The package\n\n")
        for name in names:
            handle.write(f"- [`{name}`]({name}.md)\n")
        handle.write("\n## Modules\n\n")
        for module in API_MODULES:
            handle.write(f"- [`{module}`]({module}.md)\n")
    for name in names:
        with mkdocs_gen_files.open(f"api/{name}.md", "w") as handle:
            handle.write(f"# {name}\n\n::: transformers_ramplus.{name}\n")
    for module in API_MODULES:
        with mkdocs_gen_files.open(f"api/{module}.md", "w") as handle:
            handle.write(f"# {module}\n\n::: {module}\n")


def notebook_pages() -> None:
    import mkdocs_gen_files  # the docs extra: present when mkdocs runs this file, not needed to import it

    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        with mkdocs_gen_files.open(f"notebooks/{notebook.name}", "wb") as handle:
            handle.write(notebook.read_bytes())


if __name__ in ("__main__", "<run_path>"):  # run by mkdocs-gen-files (runpy.run_path)
    api_pages()
    notebook_pages()
