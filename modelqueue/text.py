r"""Text every database stores: what ModelQueue writes about a failure.

A failure record's message and traceback, and the errors of a task of the
Tasks backend, are text the worker did not choose. An exception's message
may hold a NUL (PostgreSQL refuses it), a lone surrogate (a file name that
is not UTF-8, as ``os.fsdecode`` gives it: no database takes it), or twenty
million characters; its ``__str__`` may even raise. :func:`storable` makes
any such text one that every database stores, within a length, and
:func:`text_of` reads an object's text without raising.

The stored text is the original, or it ends with a marker that names what
was changed::

    ' [modelqueue: ' + what was changed, separated by '; ' + ']'

>>> storable('disk full', 100)
'disk full'
>>> print(storable('/data/caf\udce9.txt', 100))
/data/caf\udce9.txt [modelqueue: 1 lone surrogate written as \uXXXX]
>>> print(storable('a\x00b', 100))
a\x00b [modelqueue: 1 NUL written as \x00]
>>> print(storable('E' * 50, 40))
EEEEEEE… [modelqueue: cut 43 characters]

So a reader can tell: a text that does not end with a marker is exactly
the text that was raised (:func:`is_cleaned` says which). A text that
ended with something that reads as a marker gets one more, naming that:

>>> is_cleaned('disk full'), is_cleaned(storable('a\x00b', 100))
(False, True)
>>> print(storable('x [modelqueue: cut 3 characters]', 100))
x [modelqueue: cut 3 characters] [modelqueue: ended as a marker does]
"""

from __future__ import annotations

import re

__all__ = ['MARKER_START', 'is_cleaned', 'storable', 'text_of']

#: How the marker of a cleaned text begins; it ends the text with ``]``.
MARKER_START = ' [modelqueue: '
_MARKER = re.compile(r' \[modelqueue: [^\]\n]*\]\Z')
_SURROGATE = re.compile('[\ud800-\udfff]')
#: Where the characters left out are, in a text that was cut.
CUT_MARK = '…'


def is_cleaned(text: str) -> bool:
    """Whether `text` ends with the marker of a cleaned text."""
    return _MARKER.search(text) is not None


def text_of(value: object) -> tuple[str, list[str]]:
    """``str(value)``, and what :func:`storable` should add to its marker:
    nothing, or why the text could not be read (``__str__`` raised, or
    returned something other than a string), with ``''`` as the text.

    >>> text_of(ValueError('bad'))
    ('bad', [])
    >>> class Unreadable(Exception):
    ...     def __str__(self):
    ...         return 42
    >>> text_of(Unreadable())
    ('', ['its text could not be read: str() raised TypeError'])
    """
    try:
        text = str(value)
    except Exception as error:  # noqa: BLE001 (any __str__ may raise anything)
        return '', [f'its text could not be read: str() raised {name_of(error)}']
    return ''.join([text]), []  # a subclass of str as a plain one


def name_of(error: BaseException) -> str:
    """The class name of `error`, as a marker may hold it (no ``]``, no newline)."""
    name = type(error).__name__
    return re.sub(r'[\]\n\r]', '?', name if isinstance(name, str) else '?')[:100]


def storable(text: str, limit: int, keep: str = 'start', notes: list[str] | tuple[str, ...] = ()) -> str:
    r"""`text` as every database stores it, in at most `limit` characters.

    Each NUL is written ``\x00`` and each lone surrogate ``\udcXX`` (its
    code point); a text longer than `limit` keeps its start (`keep`
    ``'start'``) or its first third and its end (``'ends'``, for a
    traceback: the first frames and the exception), ``…`` where characters
    were left out. If anything changed, or `notes` are given, the marker
    names it. `limit` must leave room for the marker (a few dozen
    characters; ModelQueue's limits are at least 1000).

    >>> frames = '  File "x.py", line 1\n' * 20
    >>> print(storable('Traceback (most recent call last):\n' + frames + 'ValueError: end', 200, keep='ends'))
    Traceback (most recent call last):
      File "x.py", line … line 1
      File "x.py", line 1
      File "x.py", line 1
      File "x.py", line 1
      File "x.py", line 1
    ValueError: end [modelqueue: cut 324 characters]
    """
    if not isinstance(text, str):
        text, more = text_of(text)
        notes = [*notes, *more]
    changes = list(notes)
    if is_cleaned(text):
        changes.append('ended as a marker does')
    nuls = text.count('\x00')
    if nuls:
        changes.append(f'{nuls} NUL{_plural(nuls)} written as \\x00')
        text = text.replace('\x00', '\\x00')
    surrogates = len(_SURROGATE.findall(text))
    if surrogates:
        changes.append(f'{surrogates} lone surrogate{_plural(surrogates)} written as \\uXXXX')
        text = _SURROGATE.sub(lambda match: f'\\u{ord(match.group()):04x}', text)
    marker = _marker(changes)
    if len(text) + len(marker) <= limit:
        return text + marker
    # The count of characters cut has at most as many digits as the length.
    longest = _marker([*changes, _cut_note(len(text))])
    room = max(limit - len(longest) - len(CUT_MARK), 0)
    cut = len(text) - room
    if keep == 'ends':
        head = room // 3
        body = text[:head] + CUT_MARK + text[len(text) - (room - head) :]
    else:
        body = text[:room] + CUT_MARK
    return body + _marker([*changes, _cut_note(cut)])


def _cut_note(count: int) -> str:
    return f'cut {count} character{_plural(count)}'


def _marker(changes: list[str]) -> str:
    return f'{MARKER_START}{"; ".join(changes)}]' if changes else ''


def _plural(count: int) -> str:
    return '' if count == 1 else 's'
