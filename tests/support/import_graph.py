"""The import graph of a package, read from its source (nothing is imported).

Every import counts, wherever it stands: at the top of a module, inside a
function (a lazy import), under ``if TYPE_CHECKING``. A string constant that
names a module of the package by its dotted path
(``import_module('modelqueue.admin.actions')``) counts too, since that is how
a lazy name is loaded.
"""

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportGraph:
    package: str
    #: module -> {imported module: [line numbers]}
    edges: dict = field(default_factory=dict)
    #: (module, line, imported module, private name) for ``from x import _name``
    private_imports: list = field(default_factory=list)

    def cycles(self):
        """Strongly connected components of more than one module (or a module
        importing itself), each sorted, found with Tarjan's algorithm."""
        index, low, stack, on_stack, found = {}, {}, [], set(), []
        counter = [0]

        def visit(node):
            index[node] = low[node] = counter[0]
            counter[0] += 1
            stack.append(node)
            on_stack.add(node)
            for target in self.edges.get(node, ()):
                if target not in index:
                    visit(target)
                    low[node] = min(low[node], low[target])
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in self.edges.get(node, ()):
                    found.append(sorted(component))

        for node in sorted(self.edges):
            if node not in index:
                visit(node)
        return sorted(found)


def module_name(root, path):
    """The dotted name of the file `path` of the package at `root`."""
    parts = list(path.relative_to(root.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def read_graph(root):
    """The ImportGraph of the package whose folder is `root`."""
    root = Path(root)
    package = root.name
    files = {module_name(root, path): path for path in sorted(root.rglob('*.py'))}
    graph = ImportGraph(package)
    for module, path in files.items():
        is_package = path.name == '__init__.py'
        targets = graph.edges.setdefault(module, {})
        tree = ast.parse(path.read_text(), filename=str(path))
        # Logger names are module names too; they load nothing.
        logger_names = {
            id(node.args[0])
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and getattr(node.func, 'attr', getattr(node.func, 'id', None)) == 'getLogger'
            and node.args
        }
        for node in ast.walk(tree):
            if id(node) in logger_names:
                continue
            for target, name in _imported(node, module, is_package, files):
                targets.setdefault(target, []).append(node.lineno)
                if name and name.startswith('_') and not name.startswith('__'):
                    graph.private_imports.append((module, node.lineno, target, name))
    return graph


def _imported(node, module, is_package, files):
    """(module of the package, name taken from it or None) for each import of `node`."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in files:
                yield alias.name, None
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, module, is_package)
        for alias in node.names:
            submodule = f'{base}.{alias.name}'
            if submodule in files:
                yield submodule, None
            elif base in files:
                yield base, alias.name
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        # A dotted module name in a string; not the package's bare name,
        # which is also the name of its loggers.
        # (A module's own name is a salt or a label, not an import.)
        if '.' in node.value and node.value in files and node.value != module:
            yield node.value, None


def _absolute(node, module, is_package):
    if not node.level:
        return node.module or ''
    parts = module.split('.')
    if not is_package:
        parts.pop()
    parts = parts[: len(parts) - (node.level - 1)]
    return '.'.join([*parts, *([node.module] if node.module else [])])
