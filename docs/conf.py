"""Sphinx configuration of ModelQueue's documentation.

Build it from the repository's root with the ``docs`` extra installed::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The repository's root comes first on ``sys.path``, so autodoc documents the
``modelqueue/`` of this checkout even where another one is installed, and
Django is configured just enough to import every module (no database is
opened). The performance page's figures are read from ``bench/results/`` by
the local extension ``docs/_ext/benchresults.py``.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / '_ext')]

import django  # noqa: E402 (after the path above, so this checkout is the one imported)
from django.conf import settings  # noqa: E402

TASKS_APP = []
if django.VERSION < (6, 0):
    TASKS_APP = ['django_tasks']  # the backport of django.tasks

settings.configure(
    SECRET_KEY='modelqueue-docs-only',
    USE_TZ=True,
    TIME_ZONE='UTC',
    INSTALLED_APPS=[
        'modelqueue.admin.apps.QueueAdminConfig',
        'django.contrib.auth',
        'django.contrib.contenttypes',
        'django.contrib.sessions',
        'django.contrib.messages',
        'modelqueue',
        'import_export',
        *TASKS_APP,
    ],
    DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}},
    DEFAULT_AUTO_FIELD='django.db.models.BigAutoField',
    TASKS={'default': {'BACKEND': 'modelqueue.tasks.ModelQueueBackend'}},
)
django.setup()

import modelqueue  # noqa: E402

project = 'ModelQueue'
author = 'the ModelQueue authors'
copyright = 'the ModelQueue authors; Apache-2.0'
release = modelqueue.__version__
version = '.'.join(release.split('.')[:2])

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.viewcode',
    'myst_parser',
    'benchresults',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', 'api-reference.txt']
# `name` in a docstring or a page names a Python object; an unknown one is
# shown as code, not reported.
default_role = 'py:obj'

autodoc_member_order = 'bysource'
# Type hints, where a signature has them, go into the description of the
# parameters the docstring documents; none are needed for a page to build.
autodoc_typehints = 'description'
autodoc_typehints_description_target = 'documented'
# A method without a docstring of its own is shown without one, rather than
# with Django's or django-import-export's, whose markup is theirs.
autodoc_inherit_docstrings = False
autodoc_default_options = {'members': True, 'show-inheritance': True}

myst_heading_anchors = 3

html_theme = 'furo'
html_title = f'ModelQueue {release}'
