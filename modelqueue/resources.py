"""Moved to :mod:`modelqueue.import_export.resources`; importing this path
warns, and ModelQueue 3.2 removes it."""

from .deprecation import warn_moved
from .import_export.resources import *  # noqa: F403 (every name the module had)
from .status import DECODED_PARTS as PARTS  # noqa: F401 (its former name)

warn_moved('modelqueue.resources', 'modelqueue.import_export.resources')
