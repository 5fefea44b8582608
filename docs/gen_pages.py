"""Build-time pages of the documentation site (run by mkdocs-gen-files; nothing here is written to the repository).

- the README, split at its `## ` headings: `index.md` is the title and introduction, every section becomes a page
  (the README stays the one source of the text: no page is written by hand);
- `api/*.md`: one page per public object of `transformers_ramplus` (its `__all__`) and per public module, rendered
  from the docstrings by mkdocstrings;
- `notebooks/*.ipynb`: the executed notebooks, rendered with their outputs (pictures included) by mkdocs-jupyter.
"""

from __future__ import annotations

import re
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
    "transformers_ramplus.models.remote_code",
]


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower().replace("`", "")).strip("-") or "section"


def readme_sections(text: str) -> list[tuple[str, str]]:
    """(title, markdown) of the introduction and of every `## ` section, fenced code blocks kept whole."""
    sections, title, lines, fence = [], None, [], None
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            ticks = re.match(r"`+", stripped).group(0)
            if fence is None:
                fence = ticks
            elif stripped.rstrip() == fence:
                fence = None
        if fence is None and re.match(r"^##\s", line):
            sections.append((title, "\n".join(lines).strip() + "\n"))
            title, lines = line[3:].strip(), [f"# {line[3:].strip()}"]
            continue
        lines.append(line)
    sections.append((title, "\n".join(lines).strip() + "\n"))
    return sections


def promote_headings(markdown: str) -> str:
    """Headings one level up outside code blocks: a section's `### ` subsections are its page's `## ` ones."""
    lines, fence = [], None
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            ticks = re.match(r"`+", stripped).group(0)
            fence = ticks if fence is None else (None if stripped.rstrip() == fence else fence)
        elif fence is None and re.match(r"^###+ ", line):
            line = line[1:]
        lines.append(line)
    return "\n".join(lines) + "\n"


def readme_pages() -> list[str]:
    import mkdocs_gen_files

    sections = readme_sections((ROOT / "README.md").read_text(encoding="utf-8"))
    names = []
    for number, (title, body) in enumerate(sections):
        name = "index.md" if title is None else f"{number:02d}-{slug(title)}.md"
        if title is not None:
            body = promote_headings(body)
        with mkdocs_gen_files.open(name, "w") as handle:
            handle.write(body)
        mkdocs_gen_files.set_edit_path(name, "../README.md")
        names.append(name)
    return names


def public_names() -> list[str]:
    """`__all__` of the package as written in src/ (the tree mkdocstrings documents, not an installed copy)."""
    import ast

    tree = ast.parse((ROOT / "src" / "transformers_ramplus" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise ValueError("src/transformers_ramplus/__init__.py defines no literal __all__")


def api_pages() -> None:
    import mkdocs_gen_files

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
    import mkdocs_gen_files

    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        with mkdocs_gen_files.open(f"notebooks/{notebook.name}", "wb") as handle:
            handle.write(notebook.read_bytes())


if __name__ in ("__main__", "<run_path>"):  # run by mkdocs-gen-files (runpy.run_path)
    readme_pages()
    api_pages()
    notebook_pages()
