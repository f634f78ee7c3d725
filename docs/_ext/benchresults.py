"""Benchmark figures read from ``bench/results/*.json`` when the docs are built.

No figure of the performance page is typed by hand: each names the results
file it comes from and the place in it, and the build fails when either is
missing. Three pieces:

``.. bench-files::``
    names the results files the rest of the page reads, one ``alias: file``
    a line (files in ``bench/results/``)::

        .. bench-files::

           sqlite: dashboard-2026-11-29-sqlite.json
           pg: dashboard-2026-11-29-postgresql-2.json

``.. bench-table::``
    a table; its rows are lines of cells separated by ``|``, and a cell's
    ``{alias: path | format}`` is replaced by the value found at ``path`` in
    the file ``alias`` names, formatted with Python's ``format(value,
    format)``. The caption names the files the table read::

        .. bench-table:: The dashboard at 1,000,000 rows
           :header: | SQLite | PostgreSQL

           whole request | {sqlite: timings/dashboard JSON endpoint/median_ms | .0f} ms | {pg: ... | .0f} ms

``:bench:`alias: path | format```
    one figure in running text.

``.. bench-report:: file``
    the text that ``python -m bench throughput`` printed for a results file
    (``bench.throughput_report.report``), as a literal block.

``.. bench-targets:: file``
    the targets a run judged (MET, MISSED, NOT JUDGED), as its file stores
    them.

A path is keys separated by ``/``. A key followed by ``[name=value, ...]``
takes the first item of that list whose fields match (numbers compare as
numbers: ``[delay_ms=5]`` matches 5.0); a number alone indexes a list; a key
with ``*`` matches several keys and gives the list of their values. An
expression may be ``alias: min(path; path ...)`` or ``max(...)`` of the
numbers found, or operands divided, ``a / b`` (with spaces around the
slash; ``b`` may be a number: ``median_ms / 1000`` is seconds).
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / 'bench' / 'results'
SELECTOR = re.compile(r'^(?P<key>[^\[]*)\[(?P<fields>[^\]]*)\]$')
ALIAS = re.compile(r'^\s*(?P<alias>[A-Za-z][\w-]*):\s+(?P<rest>.*)$', re.DOTALL)
FUNCTION = re.compile(r'^(?P<name>min|max)\((?P<path>.*)\)$')


class BenchError(Exception):
    """A figure that cannot be read: the message says which and why."""


def load(filename):
    path = RESULTS / filename
    if not path.is_file():
        raise BenchError(f'no results file bench/results/{filename}')
    return json.loads(path.read_text())


def same(value, wanted):
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return str(value) == wanted


def lookup(data, path):
    """The value at `path` (keys separated by /) in `data`; a key with a *
    matches several keys of a dict, and gives the list of their values."""
    return _lookup(data, [segment.strip() for segment in path.split('/')], path)


def _lookup(value, segments, path):
    for number, segment in enumerate(segments):
        match = SELECTOR.match(segment)
        key = match['key'].strip() if match else segment
        if '*' in key:
            if not isinstance(value, dict):
                raise BenchError(f'{path}: {key!r} needs a dict')
            keys = [name for name in value if fnmatch.fnmatchcase(name, key)]
            if not keys:
                raise BenchError(f'{path}: no key matches {key!r} (found {sorted(value)})')
            return [_lookup(value[name], segments[number + 1:], path) for name in keys]
        if key:
            if isinstance(value, list) and key.isdigit():
                index = int(key)
                if index >= len(value):
                    raise BenchError(f'{path}: no item {index}')
                value = value[index]
            elif isinstance(value, dict) and key in value:
                value = value[key]
            else:
                known = sorted(value) if isinstance(value, dict) else type(value).__name__
                raise BenchError(f'{path}: no {key!r} (found {known})')
        if match:
            fields = dict(
                (part.split('=', 1)[0].strip(), part.split('=', 1)[1].strip())
                for part in match['fields'].split(',')
                if '=' in part
            )
            if not isinstance(value, list):
                raise BenchError(f'{path}: {key!r} is not a list')
            found = [
                item
                for item in value
                if all(name in item and same(item[name], wanted) for name, wanted in fields.items())
            ]
            if not found:
                raise BenchError(f'{path}: no item of {key!r} has {fields}')
            value = found[0]
    return value


class Figures:
    """The results files a page has named, and the ones a table has read."""

    def __init__(self, aliases):
        self.aliases = aliases  # alias -> file name
        self.used = []

    def operand(self, text, default):
        text = text.strip()
        if re.fullmatch(r'\d+(\.\d+)?', text):  # a constant: "median_ms / 1000" is seconds
            return float(text), default
        match = ALIAS.match(text)
        alias = default
        if match and match['alias'] in self.aliases:
            alias, text = match['alias'], match['rest'].strip()
        if alias is None:
            raise BenchError(f'{text}: which file? (name it as "alias: path"; known: {sorted(self.aliases)})')
        filename = self.aliases[alias]
        if filename not in self.used:
            self.used.append(filename)
        data = load(filename)
        function = FUNCTION.match(text)
        try:
            if function:
                values = []
                for path in function['path'].split(';'):
                    found = lookup(data, path)
                    values.extend(found if isinstance(found, list) else [found])
                return {'min': min, 'max': max}[function['name']](values), alias
            return lookup(data, text), alias
        except BenchError as error:
            raise BenchError(f'bench/results/{filename}: {error}') from None

    def value(self, expression):
        """The text of one ``alias: path | format`` expression."""
        expression, _, spec = expression.partition('|')
        operands = expression.split(' / ')
        value, alias = self.operand(operands[0], None if len(self.aliases) != 1 else next(iter(self.aliases)))
        for operand in operands[1:]:
            divisor, _ = self.operand(operand, alias)
            value = value / divisor
        try:
            return format(value, spec.strip())
        except (TypeError, ValueError) as error:
            raise BenchError(f'{expression.strip()}: cannot format {value!r} as {spec.strip()!r}: {error}') from None

    def fill(self, template):
        """`template` with each ``{expression}`` replaced by its figure."""
        return re.sub(r'\{([^{}]*)\}', lambda match: escape(self.value(match[1])), template)


def split_cells(line):
    """The cells of a table line: split at each | outside braces."""
    cells, depth, current = [], 0, ''
    for character in line:
        if character == '{':
            depth += 1
        elif character == '}':
            depth -= 1
        if character == '|' and depth == 0:
            cells.append(current.strip())
            current = ''
        else:
            current += character
    cells.append(current.strip())
    return cells


def page_aliases(env):
    return env.temp_data.setdefault('bench_files', {})


class BenchFiles(SphinxDirective):
    """``.. bench-files::`` with ``alias: file`` lines: what the page reads."""

    has_content = True

    def run(self):
        aliases = page_aliases(self.env)
        for line in self.content:
            if not line.strip():
                continue
            alias, _, filename = line.partition(':')
            filename = filename.strip()
            if not (RESULTS / filename).is_file():
                raise self.error(f'bench-files: no results file bench/results/{filename}')
            aliases[alias.strip()] = filename
            self.env.note_dependency(str(RESULTS / filename))
        return []


class BenchTable(SphinxDirective):
    """``.. bench-table:: caption`` whose cells' ``{...}`` are read from results files."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {'header': directives.unchanged, 'widths': directives.unchanged}

    def run(self):
        figures = Figures(page_aliases(self.env))
        rows = []
        try:
            if 'header' in self.options:
                rows.append(split_cells(self.options['header']))
            for line in self.content:
                if line.strip():
                    rows.append([figures.fill(cell) for cell in split_cells(line)])
        except BenchError as error:
            raise self.error(f'bench-table: {error}') from None
        width = len(rows[0])
        if any(len(row) != width for row in rows):
            raise self.error(f'bench-table: every row needs {width} cells: {rows}')
        sources = ', '.join(f'``bench/results/{filename}``' for filename in figures.used)
        caption = self.arguments[0] if self.arguments else ''
        caption = f'{caption} (from {sources})' if caption else f'From {sources}'
        lines = [f'.. list-table:: {caption}']
        if 'header' in self.options:
            lines.append('   :header-rows: 1')
        if 'widths' in self.options:
            lines.append(f'   :widths: {self.options["widths"]}')
        lines.append('')
        for row in rows:
            for number, cell in enumerate(row):
                bullet = '*' if number == 0 else ' '
                lines.append(f'   {bullet} - {cell}'.rstrip())
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), self.content_offset, container)
        return container.children


class BenchReport(SphinxDirective):
    """``.. bench-report:: file``: the throughput run's printed report."""

    required_arguments = 1

    def run(self):
        from bench.throughput_report import report  # noqa: PLC0415 (the repository's root is on sys.path by now)

        filename = self.arguments[0]
        try:
            data = load(filename)
        except BenchError as error:
            raise self.error(f'bench-report: {error}') from None
        self.env.note_dependency(str(RESULTS / filename))
        block = nodes.literal_block(text=f'# bench/results/{filename}\n{report(data)}')
        return [block]


VERDICTS = {True: 'met', False: 'missed', None: 'not judged'}


def target_rows(targets):
    """(target, verdict, detail) of a results file's ``targets``: a list of
    dicts, one dict, or the lines the scale benchmark printed."""
    if isinstance(targets, dict):
        targets = [targets]
    for target in targets:
        if isinstance(target, dict):
            yield target['target'], VERDICTS[target['met']], target.get('detail', '')
        else:
            verdict, _, rest = target.partition(' ')
            name, _, detail = rest.strip().rpartition(': ')
            yield name, verdict.lower().replace('_', ' '), detail


class BenchTargets(SphinxDirective):
    """``.. bench-targets:: file``: the targets a run judged, as stored in its file."""

    required_arguments = 1

    def run(self):
        filename = self.arguments[0]
        try:
            data = load(filename)
        except BenchError as error:
            raise self.error(f'bench-targets: {error}') from None
        targets = data.get('targets', data.get('target'))
        if not targets:
            raise self.error(f'bench-targets: bench/results/{filename} judged no target')
        self.env.note_dependency(str(RESULTS / filename))
        lines = [
            f'.. list-table:: Targets as judged by the run (from ``bench/results/{filename}``)',
            '   :header-rows: 1',
            '   :widths: 50 10 40',
            '',
            '   * - target',
            '     - judged',
            '     - figures',
        ]
        for name, verdict, detail in target_rows(targets):
            lines += [f'   * - {escape(name)}', f'     - {verdict}', f'     - {escape(detail)}'.rstrip()]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), self.content_offset, container)
        return container.children


def escape(text):
    """`text` as plain reST: no character of it starts markup."""
    return re.sub(r'([\\*`|_\[\]<>])', r'\\\1', text)


def bench_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    env = inliner.document.settings.env
    try:
        figure = Figures(page_aliases(env)).value(text)
    except BenchError as error:
        message = inliner.reporter.error(f':bench:`{text}`: {error}', line=lineno)
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    return [nodes.Text(figure)], []


def setup(app):
    app.add_directive('bench-files', BenchFiles)
    app.add_directive('bench-table', BenchTable)
    app.add_directive('bench-report', BenchReport)
    app.add_directive('bench-targets', BenchTargets)
    app.add_role('bench', bench_role)
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': True}

