"""The documentation site's pages come from the README, the docstrings and the notebooks (`docs/gen_pages.py`); the
strict build itself runs in the README test (the "Documentation" section's `make docs`) and in CI (`.ci/run`)."""

import importlib.util
import re

from conftest import PROJECT_ROOT


def _gen_pages():
    spec = importlib.util.spec_from_file_location("gen_pages", PROJECT_ROOT / "docs" / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the functions; the pages are written only under mkdocs
    return module


def test_every_readme_line_is_on_exactly_one_page():
    gen = _gen_pages()
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    sections = gen.readme_sections(readme)
    titles = [title for title, _ in sections[1:]]
    assert titles == [line[3:].strip() for line in readme.splitlines() if re.match(r"^##\s", line)]
    # the pages hold the README's lines, in order, with each `## Title` as the page's `# Title`
    rebuilt = "\n".join(body.strip() for _, body in sections)
    original = "\n".join(
        ("# " + line[3:].strip()) if re.match(r"^##\s", line) else line for line in readme.splitlines()
    ).strip()
    assert re.sub(r"\n+", "\n", rebuilt) == re.sub(r"\n+", "\n", original)
    assert len({gen.slug(title) for title in titles}) == len(titles)  # one file per section


def test_headings_move_up_outside_code_blocks_only():
    gen = _gen_pages()
    page = "# Fine-tuning\n### In Python\n```bash\n### not a heading\n```\n#### Deeper\n"
    assert gen.promote_headings(page) == "# Fine-tuning\n## In Python\n```bash\n### not a heading\n```\n### Deeper\n"


def test_the_api_reference_lists_the_public_objects():
    import transformers_ramplus

    gen = _gen_pages()
    for module in gen.API_MODULES:
        assert importlib.util.find_spec(module) is not None, module
    assert gen.public_names() == list(transformers_ramplus.__all__)  # read from src/, as mkdocstrings reads it
