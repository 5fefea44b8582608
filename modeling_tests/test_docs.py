"""The documentation site: hand-written pages in `docs/`, all in the navigation of mkdocs.yml, the README short and
linking into them, and the API reference generated from the public objects (`docs/gen_pages.py`). The strict build
itself runs in the documentation test (the Development page's `make docs`) and in CI (`.ci/run`); every code block of
the pages runs in `test_docs_code.py`."""

import importlib.util
import re

import yaml

import transformers_ramplus
from conftest import PROJECT_ROOT
from test_docs_code import documentation_pages, nav_pages


DOCS_DIR = PROJECT_ROOT / "docs"
README_MAX_LINES = 250
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


def _gen_pages():
    spec = importlib.util.spec_from_file_location("gen_pages", DOCS_DIR / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the functions; the pages are written only under mkdocs
    return module


def _nav() -> list[str]:
    return nav_pages(yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])


def test_every_written_page_is_in_the_navigation_once():
    written = sorted(path.relative_to(DOCS_DIR).as_posix() for path in DOCS_DIR.rglob("*.md"))
    nav = _nav()
    assert len(nav) == len(set(nav))
    assert sorted(page for page in nav if (DOCS_DIR / page).is_file()) == written
    generated = [page for page in nav if not (DOCS_DIR / page).is_file()]
    assert generated == ["api/index.md"]  # written by gen_pages.api_pages at build time
    assert documentation_pages() == ["README.md", *(f"docs/{page}" for page in nav if page in written)]


def test_the_readme_is_short_and_links_into_the_pages():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert "```bash\nmake test\n```" in readme  # CI (.ci/run) runs exactly the README's test command
    targets = [target for target in _LINK.findall(readme) if not target.startswith("http")]
    assert len(targets) >= 10
    missing = [target for target in targets if not (PROJECT_ROOT / target).is_file()]
    assert not missing, f"README links to missing files: {missing}"
    linked = {target.removeprefix("docs/") for target in targets}
    assert set(_nav()) - linked == {"api/index.md"}  # every written page is one click from the README


def test_the_api_reference_lists_the_public_objects():
    gen = _gen_pages()
    for module in gen.API_MODULES:
        assert importlib.util.find_spec(module) is not None, module
    assert gen.public_names() == list(transformers_ramplus.__all__)  # read from src/, as mkdocstrings reads it
