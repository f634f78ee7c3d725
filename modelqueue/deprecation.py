"""Old import paths that still work for one release, with a warning.

>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter('always')
...     warn_moved('modelqueue.resources', 'modelqueue.import_export.resources')
>>> print(caught[0].message)
modelqueue.resources moved to modelqueue.import_export.resources; the old path will be removed in ModelQueue 3.2
"""

from __future__ import annotations

import sys
import warnings

__all__ = ['RemovedInModelQueue32Warning', 'warn_moved']


class RemovedInModelQueue32Warning(DeprecationWarning):
    """A name used by a path that ModelQueue 3.2 removes."""


def warn_moved(old: str, new: str) -> None:
    """Warn that `old` (a module or a name) is now `new`, naming the line of
    the caller's code that used it (past the import system's frames)."""
    warnings.warn(
        f'{old} moved to {new}; the old path will be removed in ModelQueue 3.2',
        RemovedInModelQueue32Warning,
        stacklevel=_user_level(),
    )


def _user_level() -> int:
    """The stack level of the first frame past the module that called
    warn_moved and the import machinery (``importlib.import_module``; the
    frames of ``importlib._bootstrap`` are skipped by warnings itself)."""
    level, frame = 3, sys._getframe(2)  # 1 is warn_moved; 2 the shim
    while frame.f_back is not None and frame.f_back.f_globals.get('__name__', '').startswith('importlib'):
        frame = frame.f_back
        if '_bootstrap' not in frame.f_code.co_filename:
            level += 1
    return level
