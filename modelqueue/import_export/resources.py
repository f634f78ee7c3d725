"""django-import-export support for queue fields: statuses as readable columns.

On export each queue field, say ``status``, becomes four columns:

``status``
    the raw 19-digit integer, written as text so that spreadsheets keep
    every digit (a spreadsheet number keeps only 15 or 16);
``status_state``
    the state name: created, waiting, working, finished or canceled;
``status_when``
    the priority: an ISO 8601 UTC datetime such as
    ``2018-01-02T03:04:56.789+00:00``, or the plain integer when the
    priority is not a timestamp;
``status_attempts``
    the attempts digit, 0 through 9.

On import a row gives the status either way:

- the raw integer in ``status``: it is used as it is; any decoded column
  that is not blank must agree with it, or the row is refused (clear the
  raw column to use the decoded ones);
- otherwise the decoded columns: ``status_state`` is required, a blank
  ``status_when`` means now, a blank ``status_attempts`` means 0. Naive
  datetimes are taken as UTC, like everywhere in modelqueue;
- a row with every status column blank or absent keeps the status it has;
  a new row becomes waiting, due now.

An import never undoes a worker's result:

- A status that would be *working* is refused unless the resource allows it
  (``allow_working = True`` in its Meta, or ``allow_working=True`` when
  making it): a working row that no worker holds would look stalled.
- A row that is working now (a worker holds it) is refused if the import
  would change anything of it, with the same opt-in.
- A status that sends a finished or canceled row back to created or waiting
  (so that it runs again) is refused unless the resource allows it
  (``allow_rerun``).
- An existing row is saved with one UPDATE of the columns the file changed,
  and only while its queue fields still hold what the import read; if a
  worker claimed or finished it meanwhile, the import fails and saves nothing.

Every error names the row, the column and the value, and the import is all
or nothing: a single bad row means nothing of the file is saved.

This module needs django-import-export; the rest of modelqueue does not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.translation import gettext as _

from ..queue import save_fields_fenced
from ..status import DECODED_PARTS, State, Status, now

MISSING_IMPORT_EXPORT = (
    'modelqueue.import_export needs django-import-export 4, which is not'
    ' installed: pip install "modelqueue[import-export]"'
)

try:
    from import_export import fields, resources, widgets
except ImportError as error:
    raise ImportError(MISSING_IMPORT_EXPORT, name=error.name) from error

if TYPE_CHECKING:
    from django.db.models import Model


def queue_columns(field: str) -> list[str]:
    """Return the column names of queue field `field`: raw first, then decoded.

    >>> queue_columns('status')
    ['status', 'status_state', 'status_when', 'status_attempts']
    """
    return [field, *(f'{field}_{part}' for part in DECODED_PARTS)]


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


#: Past this, a float (a spreadsheet's number) no longer holds every integer.
EXACT_FLOAT = 2**53


def _whole_number(value: object) -> int | None:
    """Return `value` as an int if it is a whole number (or its text), else None.

    A float beyond 2**53 is refused: it has lost digits already (a
    spreadsheet turns 12345678901234567 into 12345678901234568).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        if abs(value) > EXACT_FLOAT:
            raise ValueError(
                _(
                    'invalid number %(value)r: beyond %(limit)s a spreadsheet number'
                    ' has lost digits; write it as text'
                )
                % {'value': value, 'limit': EXACT_FLOAT}
            )
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


class StatusWidget(widgets.Widget):
    """The raw status column: a 19-digit integer, always rendered as text.

    Text keeps every digit in CSV, JSON (JavaScript numbers keep 15 or 16)
    and XLSX (spreadsheet numbers too).

    >>> widget = StatusWidget()
    >>> widget.render(Status(2201801020304567890))
    '2201801020304567890'
    >>> widget.clean('2201801020304567890')
    Status(2201801020304567890)
    >>> widget.clean('') is None
    True
    >>> widget.clean('22.5')
    Traceback (most recent call last):
      ...
    ValueError: invalid status '22.5': expected a 19-digit integer whose first digit (the state) is 1 through 5
    """

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Status | None:
        if _is_blank(value):
            return None
        return Status(value.strip() if isinstance(value, str) else value)

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return '' if value is None else str(int(value))


class StatusPartWidget(widgets.Widget):
    """One decoded column of a status: its state, when, or attempts.

    >>> status = Status(4201801020304567893)
    >>> StatusPartWidget('state').render(status)
    'finished'
    >>> StatusPartWidget('when').render(status)
    '2018-01-02T03:04:56.789+00:00'
    >>> StatusPartWidget('when').render(Status.waiting(123))
    '123'
    >>> StatusPartWidget('attempts').render(status)
    3
    >>> StatusPartWidget('state').render(0)  # not a status: left blank
    ''
    >>> StatusPartWidget('when').clean('2018-01-02T04:04:56.789+01:00')
    20180102030456789
    >>> StatusPartWidget('attempts').clean('12')
    Traceback (most recent call last):
      ...
    ValueError: invalid attempts '12': expected an integer from 0 through 9
    """

    def __init__(self, part: str, **kwargs: Any) -> None:
        if part not in DECODED_PARTS:
            raise ValueError(
                f'invalid part {part!r}: expected one of {", ".join(DECODED_PARTS)}'
            )
        super().__init__(**kwargs)
        self.part = part

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str | int:
        try:
            state, priority, attempts = Status(value).parse()
        except ValueError:  # not a status (None, or a row written by hand)
            return ''
        if self.part == 'state':
            return state.name
        if self.part == 'when':
            if isinstance(priority, dt.datetime):
                return priority.isoformat(timespec='milliseconds')
            return str(priority)
        return attempts

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> State | int | None:
        """Return the state, the integer priority, or the attempts; None if blank."""
        if _is_blank(value):
            return None
        if self.part == 'state':
            return State.get(value.strip().lower() if isinstance(value, str) else value)
        if self.part == 'when':
            return _clean_priority(value)
        attempts = _whole_number(value)
        if attempts is None or not 0 <= attempts <= 9:
            raise ValueError(
                _('invalid attempts %(value)r: expected an integer from 0 through 9')
                % {'value': value}
            )
        return attempts


def _clean_priority(value: object) -> int:
    number = _whole_number(value)
    when: dt.datetime | None
    if number is None and isinstance(value, dt.datetime):
        when = value
    elif number is None and isinstance(value, str):
        try:
            # Python 3.10's fromisoformat does not take a 'Z' (UTC) suffix.
            text = value.strip()
            when = dt.datetime.fromisoformat(text[:-1] + '+00:00' if text.endswith(('Z', 'z')) else text)
        except ValueError:
            when = None
    else:
        when = None
    priority = when or number  # None when neither (a datetime is never false)
    if priority is None:
        raise ValueError(
            _(
                'invalid when %(value)r: expected an ISO 8601 datetime such as'
                ' 2018-01-02T03:04:56.789+00:00 or an integer priority'
            )
            % {'value': value}
        )
    # Status.combine checks the range and converts datetimes (naive as UTC).
    return Status.combine(State.waiting, priority, 0).priority


class QueueStatusField(fields.Field):
    """The import-export field of a queue column: raw integer or decoded columns.

    It reads every column of its queue field (see `queue_columns`), so an
    import works with the raw integer, with the decoded columns, or with
    neither (then `clean` returns None: the row keeps its status, a new row
    is waiting). See the module documentation for the rules.
    """

    def __init__(self, attribute: str, column_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(
            attribute=attribute,
            column_name=column_name or attribute,
            widget=StatusWidget(),
            **kwargs,
        )

    def clean(
        self,
        row: Mapping[str, Any],
        row_number: int | None = None,
        allow_working: bool = False,
        **kwargs: Any,
    ) -> Status | None:
        raw_column, *part_columns = queue_columns(self.column_name)
        raw = row.get(raw_column)
        given = {
            part: row[column]
            for part, column in zip(DECODED_PARTS, part_columns)
            if not _is_blank(row.get(column))
        }
        decoded: dict[str, Any] = {}
        for part, column in zip(DECODED_PARTS, part_columns):
            if part in given:
                try:
                    decoded[part] = StatusPartWidget(part).clean(given[part])
                except ValueError as error:
                    raise _row_error(row_number, column, error) from None
        if not _is_blank(raw):
            try:
                status = self.widget.clean(raw)
            except ValueError as error:
                raise _row_error(row_number, raw_column, error) from None
            combined = Status.combine(
                decoded.get('state', status.state),
                decoded.get('when', status.priority),
                decoded.get('attempts', status.attempts),
            )
            if combined != status:
                others = ', '.join(
                    f'{column!r} {given[part]!r}'
                    for part, column in zip(DECODED_PARTS, part_columns)
                    if part in given
                )
                raise _row_error(
                    row_number,
                    raw_column,
                    _(
                        '%(value)r disagrees with %(others)s; clear %(column)r'
                        ' to use the decoded columns, or make them agree'
                    )
                    % {'value': raw, 'others': others, 'column': raw_column},
                )
        elif decoded:
            if 'state' not in decoded:
                state_column = part_columns[0]
                message = (
                    _('blank; it is required when %(columns)s is given')
                    if state_column in row
                    else _('missing; it is required when %(columns)s is given')
                )
                columns = _(' or ').join(repr(c) for c in part_columns[1:])
                raise _row_error(
                    row_number, state_column, message % {'columns': columns}
                )
            status = Status.combine(
                decoded['state'],
                decoded['when'] if 'when' in decoded else now(),
                decoded.get('attempts', 0),
            )
        else:
            return None
        if status.state == State.working and not allow_working:
            column = part_columns[0] if 'state' in decoded else raw_column
            value = given['state'] if 'state' in decoded else raw
            raise _row_error(
                row_number,
                column,
                _(
                    '%(value)r is a working status, refused: no worker holds'
                    ' this row, so it would look stalled. Import it as waiting,'
                    ' or explicitly allow working rows (allow_working)'
                )
                % {'value': value},
            )
        return status


def _field_values(instance: Model) -> dict[str, Any]:
    """The loaded values of `instance`'s concrete fields, by attname, but the key."""
    return {
        field.attname: instance.__dict__.get(field.attname)
        for field in instance._meta.concrete_fields
        if not field.primary_key
    }


def _state_of(value: Any) -> State | None:
    try:
        return Status(value).state
    except ValueError:
        return None


def _refuse_rerun(
    field: QueueStatusField, current: Any, status: Status, row: Any, kwargs: Mapping[str, Any]
) -> None:
    """Refuse a status that sends a finished or canceled row back to the queue."""
    was = _state_of(current)
    if was in (State.finished, State.canceled) and status.state in (State.created, State.waiting):
        raise _row_error(
            kwargs.get('row_number'),
            field.column_name,
            _(
                '%(new)s would send this %(was)s row back to %(state)s, so it would'
                ' run again: refused. Explicitly allow rows to run again'
                ' (allow_rerun) to import it'
            )
            % {'new': int(status), 'was': was.name, 'state': status.state.name},
        )


def _row_error(row_number: int | None, column: str, problem: object) -> ValueError:
    """Return a ValueError that names the row, the column and the problem."""
    return ValueError(
        _('row %(row)s, column %(column)r: %(problem)s')
        % {'row': row_number, 'column': column, 'problem': problem}
    )


class QueueResource(resources.ModelResource):
    """A ModelResource whose queue fields export and import decoded.

    Name the queue fields in Meta; the usual options (fields, exclude,
    import_id_fields, ...) keep working, and the decoded columns follow
    their queue field::

        from modelqueue.import_export.resources import QueueResource

        class TaskResource(QueueResource):
            class Meta:
                model = Task
                queue_fields = ['status']
                allow_working = False  # the default
                allow_rerun = False  # the default

    Imports run in one transaction that is rolled back when any row is
    invalid. ``allow_working`` and ``allow_rerun`` may also be given when
    making the resource: ``TaskResource(allow_working=True)``. Rows are
    saved one by one, fenced on their status, so ``use_bulk`` is refused.
    """

    class Meta:
        use_transactions = True
        queue_fields = ()
        allow_working = False
        allow_rerun = False

    #: The resource's fields by name, the decoded columns included.
    fields: dict[str, Any]

    def __init__(
        self, allow_working: bool | None = None, allow_rerun: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.allow_working = (
            self._meta.allow_working if allow_working is None else allow_working
        )
        self.allow_rerun = self._meta.allow_rerun if allow_rerun is None else allow_rerun
        if self._meta.use_bulk:
            raise ImproperlyConfigured(
                f'{type(self).__name__}: use_bulk is not supported; a QueueResource'
                " saves each row only while its status is still what it read, so"
                " that an import never undoes a worker's result"
            )
        self.queue_fields = [
            name for name in self._meta.queue_fields if name in self.fields
        ]
        model = self._meta.model
        for name in self._meta.queue_fields:
            if model is not None and not any(
                field.name == name for field in model._meta.concrete_fields
            ):
                raise ImproperlyConfigured(
                    f'{type(self).__name__}: queue field {name!r} is not a field'
                    f' of {model.__name__}'
                )
        if not self._meta.queue_fields:
            raise ImproperlyConfigured(
                f'{type(self).__name__}: name the queue fields in Meta, for'
                " example queue_fields = ['status']"
            )
        fields_: dict[str, Any] = {}
        for name, field in self.fields.items():
            if name not in self.queue_fields:
                fields_[name] = field
                continue
            fields_[name] = QueueStatusField(
                field.attribute, field.column_name or name
            )
            columns = queue_columns(fields_[name].column_name)[1:]
            for part, column in zip(DECODED_PARTS, columns):
                fields_[f'{name}_{part}'] = fields.Field(
                    attribute=field.attribute,
                    column_name=column,
                    widget=StatusPartWidget(part),
                    readonly=True,
                )
        self.fields = fields_

    def get_queryset(self) -> Any:
        """The rows an import looks its rows up in: on the database it writes
        to (``using_db``, else the router's ``db_for_write``), never on a
        read replica, whose older copy would make a row look new, or its
        status other than the one the fenced save then finds."""
        return super().get_queryset().using(self.get_db_connection_name())

    def import_field(
        self, field: Any, instance: Model, row: Any, is_m2m: bool = False, **kwargs: Any
    ) -> None:
        """Import a queue field even when its raw column is absent.

        A row whose status columns are blank or absent keeps its status; a
        new one is waiting, due now.
        """
        if not isinstance(field, QueueStatusField):
            super().import_field(field, instance, row, is_m2m, **kwargs)
            return
        status = field.clean(row, allow_working=self.allow_working, **kwargs)
        if status is None:
            if not instance._state.adding:
                return  # the file says nothing of the status: keep it
            status = Status.waiting()
        elif not instance._state.adding and not self.allow_rerun:
            _refuse_rerun(field, getattr(instance, field.attribute), status, row, kwargs)
        setattr(instance, field.attribute, status)

    def import_instance(self, instance: Model, row: Any, **kwargs: Any) -> None:
        """Import the row's columns; refuse to change a row a worker holds.

        Remembers what changed and the queue fields as read, for the fenced
        save in `do_instance_save`.
        """
        if instance._state.adding:
            return super().import_instance(instance, row, **kwargs)
        before = _field_values(instance)
        super().import_instance(instance, row, **kwargs)
        after = _field_values(instance)
        changed = [name for name, value in after.items() if value != before[name]]
        read = {name: before[name] for name in self._queue_attnames()}
        working = [name for name, value in read.items() if _state_of(value) == State.working]
        if changed and working and not self.allow_working:
            raise ValidationError(
                {
                    working[0]: _row_error(
                        kwargs.get('row_number'),
                        working[0],
                        _(
                            'the row is working now (a worker holds it): importing'
                            ' would change %(columns)s, refused. Import it after'
                            ' the worker is done, or explicitly allow working rows'
                            ' (allow_working)'
                        )
                        % {'columns': ', '.join(changed)},
                    ).args[0]
                }
            )
        instance._modelqueue_import = (read, changed)  # type: ignore[attr-defined]  # for do_instance_save
        return None

    def do_instance_save(self, instance: Model, is_create: bool) -> None:
        """Save a new row as usual; an existing one with one fenced UPDATE.

        Only the columns the file changed are written, and only while the
        row's queue fields still hold what the import read: a worker that
        claimed or finished it meanwhile wins, and the import fails whole.
        """
        if is_create or not hasattr(instance, '_modelqueue_import'):
            return super().do_instance_save(instance, is_create)
        read, changed = instance._modelqueue_import
        if changed and not save_fields_fenced(instance, changed, read):
            model = type(instance)
            raise ValueError(
                _(
                    '%(model)s %(pk)s changed while it was being imported (a worker'
                    ' claimed or finished it): nothing was imported. Import the'
                    ' file again to see it as it is now.'
                )
                % {'model': model._meta.verbose_name, 'pk': instance.pk}
            )
        return None

    def _queue_attnames(self) -> list[str]:
        model = self._meta.model
        return [model._meta.get_field(name).attname for name in self._meta.queue_fields]

    def import_data(
        self, dataset: Any, *args: Any, rollback_on_validation_errors: bool = True, **kwargs: Any
    ) -> Any:
        """Import `dataset` all or nothing: any invalid row rolls back the rest."""
        return super().import_data(
            dataset,
            *args,
            rollback_on_validation_errors=rollback_on_validation_errors,
            **kwargs,
        )

    def get_export_order(self) -> tuple[str, ...]:
        return self._companions_follow(super().get_export_order())

    def get_import_order(self) -> tuple[str, ...]:
        return self._companions_follow(super().get_import_order())

    def _companions_follow(self, order: Iterable[str]) -> tuple[str, ...]:
        """Return `order` with each queue field's decoded columns right after it."""
        companions = {
            f'{name}_{part}': name for name in self.queue_fields for part in DECODED_PARTS
        }
        result = []
        for name in order:
            if name in companions:
                continue
            result.append(name)
            if name in self.queue_fields:
                result.extend(f'{name}_{part}' for part in DECODED_PARTS)
        return tuple(result)


def queue_resource(
    model: type[Model],
    *queue_fields: str,
    allow_working: bool = False,
    allow_rerun: bool = False,
    **meta_options: Any,
) -> type[QueueResource]:
    """Return a `QueueResource` class for `model` with `queue_fields` decoded.

    Other keyword arguments are Meta options of django-import-export
    (fields, exclude, import_id_fields, ...)::

        TaskResource = queue_resource(Task, 'status', exclude=['note'])
        TaskResource().get_export_headers()
        # ['id', 'data', 'status', 'status_state', 'status_when', 'status_attempts']

    ``TaskResource().export()`` returns a tablib Dataset of every task, and
    ``TaskResource().import_data(dataset)`` imports one.
    """
    meta = type(
        'Meta',
        (),
        {
            'model': model,
            'queue_fields': queue_fields,
            'allow_working': allow_working,
            'allow_rerun': allow_rerun,
            **meta_options,
        },
    )
    return type(QueueResource)(  # type: ignore[misc]  # the resource's metaclass
        f'{model.__name__}QueueResource',
        (QueueResource,),
        {'Meta': meta, '__module__': __name__},
    )
