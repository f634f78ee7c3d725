"""The package's shape: a light core, no imports of tests, one version."""

import subprocess
import sys
import textwrap

import modelqueue
from tests.support import ROOT

try:
    import tomllib
except ImportError:  # Python 3.10: the section's text is read instead
    tomllib = None

IMPORT_CORE = textwrap.dedent(
    """
    import sys
    import django
    from django.conf import settings
    settings.configure(
        INSTALLED_APPS=['django.contrib.contenttypes', 'django.contrib.auth', 'modelqueue'],
        DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}},
    )
    django.setup()
    before = set(sys.modules)
    import modelqueue
    loaded = sorted(set(sys.modules) - before)
    print('\\n'.join(name for name in sys.modules if name.startswith('django.contrib.admin')))
    print('admin_list_filter' in dir(modelqueue))
    """
)


def test_import_modelqueue_loads_no_admin_module():
    completed = subprocess.run(
        [sys.executable, '-X', 'importtime', '-c', IMPORT_CORE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ['True']  # no admin module, lazy names listed
    imported = [line.rsplit('|', 1)[-1].strip() for line in completed.stderr.splitlines()]
    assert 'modelqueue.queue' in imported
    assert not [name for name in imported if name.startswith('django.contrib.admin')]


def test_the_admin_helpers_are_lazy_names_of_the_package():
    from modelqueue.admin import actions, filters  # noqa: PLC0415

    assert modelqueue.admin_actions is actions.admin_actions
    assert modelqueue.admin_list_filter is filters.admin_list_filter


def test_nothing_in_the_package_imports_the_tests():
    offenders = [
        f'{path.relative_to(ROOT)}:{number}'
        for path in (ROOT / 'modelqueue').rglob('*.py')
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if 'tests.' in line or 'import tests' in line
    ]
    assert offenders == []


def test_the_version_has_one_source():
    pyproject = (ROOT / 'pyproject.toml').read_text()
    assert 'version = { attr = "modelqueue.__version__" }' in pyproject
    assert 'version=' not in (ROOT / 'setup.py').read_text()


def test_the_package_is_typed_and_its_marker_ships_in_the_wheel_and_the_sdist():
    """PEP 561: py.typed marks the whole package as typed (not "partial"),
    and the package data takes it into the wheel, MANIFEST.in into the sdist."""
    marker = ROOT / 'modelqueue' / 'py.typed'
    assert marker.is_file()
    assert 'partial' not in marker.read_text()
    text = (ROOT / 'pyproject.toml').read_text()
    if tomllib is not None:
        assert 'py.typed' in tomllib.loads(text)['tool']['setuptools']['package-data']['modelqueue']
    else:
        section = text.split('\n[tool.setuptools.package-data]\n', 1)[1].split('\n[', 1)[0]
        assert '"py.typed",' in section
    assert 'include modelqueue/py.typed' in (ROOT / 'MANIFEST.in').read_text().splitlines()
