"""Moved to :mod:`modelqueue.import_export.admin`; importing this path warns,
and ModelQueue 3.2 removes it."""

from .deprecation import warn_moved
from .import_export.admin import *  # noqa: F403 (every name the module had)

warn_moved('modelqueue.import_export_admin', 'modelqueue.import_export.admin')
