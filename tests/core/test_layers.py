"""One direction for the code: the package's layers, read from its imports.

The core (encoding, ranges, claims, run(), failure records, counters,
settings) imports nothing above it; the worker, the admin, import-export
and the Tasks backend import the core and, where listed, each other; the
public face (``modelqueue/__init__``), the app's config, the management
command and the old import paths sit on top. No import cycle anywhere, and
no module takes a private name (``_name``) from another.
"""

import importlib
import sys
import textwrap
import warnings

import pytest

import modelqueue.wakeup
import modelqueue.worker
from modelqueue.deprecation import RemovedInModelQueue32Warning
from tests.support import ROOT
from tests.support.import_graph import read_graph

PACKAGE = ROOT / 'modelqueue'

#: The modules above every layer: they may import anything of the package.
TOP = {
    'modelqueue',  # the public API, with its lazy admin names
    'modelqueue.apps',  # the app: registers the task table, its admin, the checks
    'modelqueue.resources',  # old paths, kept for one release
    'modelqueue.import_export_admin',
}

#: Imports that break the layers, each for one release only: an old path
#: that reaches the module's new home to warn and hand it over.
DEPRECATED_EDGES = {('modelqueue.wakeup', 'modelqueue.worker.waiters')}

#: Each layer and the layers it may import (itself included).
MAY_IMPORT = {
    'core': {'core'},
    'worker': {'core', 'worker'},
    'admin': {'core', 'admin'},
    'import_export': {'core', 'admin', 'import_export'},
    'tasks': {'core', 'worker', 'admin', 'tasks'},
    'management': {'core', 'worker', 'tasks', 'management'},
}


def layer_of(module):
    if module in TOP:
        return 'top'
    parts = module.split('.')
    if len(parts) > 2 and parts[1] in MAY_IMPORT:
        return parts[1]
    if len(parts) == 2 and parts[1] in MAY_IMPORT:  # a subpackage's __init__
        return parts[1]
    return 'core'  # a module of the top folder, or the migrations


def layer_violations(graph):
    found = []
    for module, targets in sorted(graph.edges.items()):
        layer = layer_of(module)
        if layer == 'top':
            continue
        for target, lines in sorted(targets.items()):
            if (module, target) in DEPRECATED_EDGES:
                continue
            if layer_of(target) not in MAY_IMPORT[layer]:
                found.append(f'{module}:{lines[0]} ({layer}) imports {target} ({layer_of(target)})')
    return found


def test_every_module_has_a_layer_and_each_layer_can_be_seen_in_the_tree():
    graph = read_graph(PACKAGE)
    layers = {layer_of(module) for module in graph.edges}
    assert layers == {'top', 'core', 'worker', 'admin', 'import_export', 'tasks', 'management'}
    assert layer_of('modelqueue.worker.threads') == 'worker'
    assert layer_of('modelqueue.queue') == 'core'
    assert layer_of('modelqueue.migrations.0001_initial') == 'core'


def current_graph():
    """The package's graph without the deprecated edges (see DEPRECATED_EDGES)."""
    graph = read_graph(PACKAGE)
    for module, target in DEPRECATED_EDGES:
        del graph.edges[module][target]
    return graph


def test_the_package_has_no_import_cycle():
    assert current_graph().cycles() == []


def test_the_only_imports_against_the_layers_are_the_deprecated_ones():
    """Each is lazy (in a module ``__getattr__``) and warns; see test_a_waiter_of_the_old..."""
    graph = read_graph(PACKAGE)
    assert {
        (module, target)
        for module, targets in graph.edges.items()
        for target in targets
        if layer_of(module) != 'top' and layer_of(target) not in MAY_IMPORT[layer_of(module)]
    } == DEPRECATED_EDGES


def test_no_layer_imports_a_layer_above_it():
    assert layer_violations(read_graph(PACKAGE)) == []


def test_no_module_imports_a_private_name_of_another():
    assert read_graph(PACKAGE).private_imports == []


def write_package(tmp_path, files):
    root = tmp_path / 'modelqueue'
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_graph_sees_lazy_imports_strings_and_relative_imports_and_finds_a_cycle(tmp_path):
    """The checks above can fail: a cycle through a lazy import, a core
    module loading the worker by a string, and a private name are found."""
    root = write_package(
        tmp_path,
        {
            '__init__.py': '',
            'status.py': 'def tally():\n    from .ranges import tally\n',
            'ranges.py': 'from .status import _parts\n',
            'queue.py': "from importlib import import_module\nimport_module('modelqueue.worker.loop')\n",
            'worker/__init__.py': 'from .loop import Worker\n',
            'worker/loop.py': 'from .. import ranges\nfrom ..status import tally\n',
        },
    )
    graph = read_graph(root)
    assert graph.cycles() == [['modelqueue.ranges', 'modelqueue.status']]
    assert graph.private_imports == [('modelqueue.ranges', 1, 'modelqueue.status', '_parts')]
    assert layer_violations(graph) == [
        'modelqueue.queue:2 (core) imports modelqueue.worker.loop (worker)'
    ]
    assert set(graph.edges['modelqueue.worker.loop']) == {'modelqueue.ranges', 'modelqueue.status'}


@pytest.mark.parametrize(
    ('old', 'name', 'new'),
    [
        ('modelqueue.resources', 'QueueResource', 'modelqueue.import_export.resources'),
        ('modelqueue.resources', 'queue_resource', 'modelqueue.import_export.resources'),
        ('modelqueue.import_export_admin', 'QueueImportExportMixin', 'modelqueue.import_export.admin'),
    ],
)
def test_an_old_module_path_still_works_and_warns_once(old, name, new):
    sys.modules.pop(old, None)
    with pytest.warns(RemovedInModelQueue32Warning, match=f'^{old} moved to {new}; the old path') as caught:
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    assert [warning.filename for warning in caught] == [__file__]  # names the importing line
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        importlib.import_module(old)  # imported once: no second warning


@pytest.mark.parametrize(
    ('name', 'new'),
    [
        ('ActionCall', 'modelqueue.worker.loop'),
        ('TaskBudget', 'modelqueue.worker.loop'),
        ('MAX_CONCURRENCY', 'modelqueue.worker.loop'),
        ('database_error_pause', 'modelqueue.worker.backoff'),
        ('BACKOFF', 'modelqueue.worker.backoff'),
        ('SIGNALS', 'modelqueue.worker.signals'),
        ('check_seconds', 'modelqueue.validation'),  # ModelQueue 3.0.0's
        ('check_count', 'modelqueue.validation'),
        ('MAX_SECONDS', 'modelqueue.validation'),
    ],
)
def test_a_name_of_the_old_worker_module_still_works_and_warns(name, new):
    with pytest.warns(RemovedInModelQueue32Warning, match=f'modelqueue.worker.{name} moved to {new}.{name}'):
        value = getattr(modelqueue.worker, name)
    assert value is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize('name', ['PollingWaiter', 'ListeningWaiter', 'waiter_for'])
def test_a_waiter_of_the_old_wakeup_module_still_works_and_warns(name):
    new = 'modelqueue.worker.waiters'
    with pytest.warns(RemovedInModelQueue32Warning, match=f'modelqueue.wakeup.{name} moved to {new}.{name}'):
        value = getattr(modelqueue.wakeup, name)
    assert value is getattr(importlib.import_module(new), name)


def test_the_worker_packages_own_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        from modelqueue.worker import Worker, serve  # noqa: PLC0415 (the import is what is tested)

    assert Worker.__module__ == 'modelqueue.worker.loop' and callable(serve)
