"""The documentation's sources point at things that exist.

Building the site is CI's separate step (``python -m sphinx -W ...``); these
checks are the fast part of it: every image a page shows is in
``docs/_static/``, every test the guarantees page names is in ``tests/``,
and every setting of ModelQueue is described in the guide.
"""

import re

import pytest

from modelqueue import conf
from tests.support import ROOT

DOCS = ROOT / 'docs'
#: reST ``.. image::``/``.. figure::`` targets and Markdown images.
IMAGE = re.compile(r'^\s*\.\. (?:image|figure):: (\S+)|!\[[^\]]*\]\(([^)\s]+)\)', re.MULTILINE)
#: a test named as ``folder/test_file.py`` or ``folder/test_file.py::test_name``.
NAMED_TEST = re.compile(r'``((?:\w+/)+test_\w+\.py)(?:::(\w+))?``')


def pages():
    sources = [*DOCS.rglob('*.rst'), *DOCS.rglob('*.md')]
    return sorted(page for page in sources if '_build' not in page.parts) + [ROOT / 'README.md']


def images_in(text):
    """The local images a page's source shows."""
    targets = [match[1] or match[2] for match in IMAGE.finditer(text)]
    return [target for target in targets if not re.match(r'[a-z]+://', target)]


def referenced_images():
    return [(page, target) for page in pages() for target in images_in(page.read_text())]


def test_the_pages_show_images():
    assert len(referenced_images()) >= 5


@pytest.mark.parametrize(
    ('page', 'target'),
    referenced_images(),
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_every_image_a_page_shows_is_in_docs_static(page, target):
    path = (page.parent / target).resolve()
    assert path.is_file(), f'{page.relative_to(ROOT)} shows {target}, which is not there'
    assert (DOCS / '_static') in path.parents, f'{target} is outside docs/_static/'


def test_images_are_found_in_rest_and_markdown():
    text = '.. image:: _static/a.png\n   :alt: A\n\n![B](docs/_static/b.png) ![C](https://example.com/c.png)\n'
    assert images_in(text) == ['_static/a.png', 'docs/_static/b.png']


def test_every_test_the_guarantees_page_names_exists():
    text = (DOCS / 'guarantees.rst').read_text()
    named = NAMED_TEST.findall(text)
    assert len(named) > 10
    missing = []
    for path, name in named:
        module = ROOT / 'tests' / path
        if not module.is_file() or (name and not re.search(rf'def {name}\b', module.read_text())):
            missing.append(f'{path}::{name}' if name else path)
    # The operator races' table names its tests by function name alone.
    races = (ROOT / 'tests' / 'admin' / 'test_operator_races.py').read_text()
    for name in re.findall(r'``(test_\w+)``', text):
        if not re.search(rf'def {name}\b', races):
            missing.append(f'admin/test_operator_races.py::{name}')
    assert missing == []


def test_the_guide_describes_every_setting():
    guide = (DOCS / 'guide.rst').read_text()
    assert [name for name in conf.DEFAULTS if f'``{name}``' not in guide] == []
