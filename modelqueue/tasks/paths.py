"""From a task row's ``task_path`` to its task, importing nothing the row names.

A row is data: whoever can write to the task table (an operator, an SQL
console, another service sharing the database) can put any text in its
``task_path``. Importing that path, as ``import_string`` would, runs the
import-time code of any module on ``sys.path``, in the worker and in any
process that calls ``get_result()``.

So :func:`find_task` looks a path up only among the modules already
imported (``sys.modules``), reads the name from the module's namespace (so
no module ``__getattr__`` runs), and takes only a task of Django's Tasks
framework (a function decorated with ``@task``). The modules of tasks are
imported by the application, never by a row: :func:`import_task_modules`
imports each installed app's ``tasks`` module (as the admin's autodiscovery
imports ``admin`` modules) and the modules named by the setting
``MODELQUEUE_TASK_MODULES``; the worker calls it when it starts, and
:func:`find_task` once before it gives up on a path. Anything else raises
:class:`UnknownTaskPath`, which the worker records on the row as it fails it.

>>> find_task('os.system')
Traceback (most recent call last):
  ...
modelqueue.tasks.paths.UnknownTaskPath: invalid task path 'os.system': expected a function
decorated with @task, found a builtin_function_or_method
"""

from __future__ import annotations

import sys
import threading
from importlib import import_module
from typing import Any

from django.utils.module_loading import autodiscover_modules

from .. import conf
from .compat import InvalidTask, Task

__all__ = ['UnknownTaskPath', 'find_task', 'import_task_modules']

#: The submodule of each installed app that :func:`import_task_modules` imports.
TASKS_MODULE = 'tasks'

_discovered = threading.Event()  # the installed apps' tasks modules are imported
_discovering = threading.Lock()


class UnknownTaskPath(InvalidTask):
    """A task row's path names no task of a module the application imports."""


def import_task_modules() -> None:
    """Import each installed app's ``tasks`` module (once per process) and the
    modules of ``MODELQUEUE_TASK_MODULES``. An error in one of them is
    raised, as the admin's autodiscovery raises one in an ``admin`` module."""
    if not _discovered.is_set():
        with _discovering:
            if not _discovered.is_set():
                autodiscover_modules(TASKS_MODULE)
                _discovered.set()
    for name in conf.get('MODELQUEUE_TASK_MODULES'):
        import_module(name)


def find_task(path: object) -> Task[..., Any]:
    """The task that the row's `path` (``module.function``) names, among the
    modules imported; UnknownTaskPath if it names none."""
    module_name, _, name = str(path).rpartition('.')
    if not module_name or not name:
        raise UnknownTaskPath(f'invalid task path {path!r}: expected module.function')
    if module_name not in sys.modules:
        import_task_modules()  # imports only what the application names
    module = sys.modules.get(module_name)
    if module is None:
        raise UnknownTaskPath(
            f'invalid task path {path!r}: the module {module_name!r} is not imported, and a'
            " task path never imports one: expected a task of an installed app's"
            f' {TASKS_MODULE!r} module or of a module in MODELQUEUE_TASK_MODULES'
        )
    namespace = getattr(module, '__dict__', None)
    found = namespace.get(name) if isinstance(namespace, dict) else None  # no module __getattr__
    if found is None:
        raise UnknownTaskPath(f'invalid task path {path!r}: module {module_name!r} has no task {name!r}')
    if not isinstance(found, Task):
        raise UnknownTaskPath(
            f'invalid task path {path!r}: expected a function decorated with @task, found'
            f' a {type(found).__name__}'
        )
    return found
