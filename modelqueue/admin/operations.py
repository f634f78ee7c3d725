"""What an operator can do to queue rows: requeue, cancel, reprioritize, reset.

Each operation is defined once, here, and used by the bulk actions of the
changelist and by the buttons of the change form. An operation rewrites the
status of the selected rows that are in its states with one UPDATE (rows in
other states are left as they are), after counting the selection by state in
the same transaction, so the operator is told exactly what changed.

>>> [operation.name for operation in OPERATIONS.values()]
['requeue', 'cancel', 'reprioritize', 'reset_attempts']
>>> [state.name for state in CANCEL.states]
['created', 'waiting', 'working']

The actions of modelqueue 2.2.1 (:func:`modelqueue.admin.actions.admin_actions`)
are operations too (`LEGACY_OPERATIONS`), under the same rules:

>>> [state.name for state in LEGACY_OPERATIONS['state_created'].states]
['waiting', 'finished', 'canceled']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.utils import model_ngettext
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from .. import ranges
from ..databases import for_writes
from ..expressions import with_attempts, with_priority, with_state, with_state_and_priority
from ..status import State, Status, now
from ..validation import concrete_field
from .display import STATE_LABELS
from .history import ROWS_LOGGED_ONE_BY_ONE, log_operation

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.db.models import Model, QuerySet
    from django.http import HttpRequest
    from django.utils.functional import _StrOrPromise

#: A row an operation left as it was although in its states: its status, and
#: a text that names it and says why (escaped where shown).
Left = tuple[Status, str]

#: Rows to leave, as a model admin's ``queue_rows_to_leave(field, operation)``
#: gives them: called with the database and primary keys about to change,
#: returns those to leave as they are, with their :data:`Left`.
Leave = Callable[[str, list[Any]], dict[Any, Left]]

#: Primary keys read, and rows written, at a time by an operation over many rows.
CHUNK_ROWS = 1000
#: How many times an operation is tried when the database refuses a row that
#: came to conflict after it looked (see :meth:`Operation.run`).
ATTEMPTS = 3
#: How many left rows the message names, one by one.
LEFT_NAMED = 10


def pk_chunks(queryset: QuerySet[Any], size: int = CHUNK_ROWS) -> Iterator[list[Any]]:
    """The primary keys of `queryset` in ascending order, `size` at a time,
    each chunk read by a query of its own from past the last key: a table
    of millions of rows is never read into memory at once."""
    last = None
    while True:
        rows = queryset.order_by('pk') if last is None else queryset.filter(pk__gt=last).order_by('pk')
        pks = list(rows.values_list('pk', flat=True)[:size])
        if not pks:
            return
        yield pks
        last = pks[-1]


class Operation:
    """A rewrite of the status of rows in `states` to what `new_status` gives.

    `new_status(field, **options)` returns the value or expression written
    to `field`; `verb` names the operation in the admin history; `done` is
    the message reported after it, with the placeholders ``%(count)s``,
    ``%(items)s``, ``%(field)s`` and ``%(states)s``; `logged`, when given,
    is the admin history's entry of each row (``%(field)s`` and
    ``%(state)s``, the row's previous state) in place of one made of `verb`.
    """

    def __init__(
        self,
        name: str,
        states: Iterable[State],
        new_status: Callable[..., Any],
        verb: _StrOrPromise,
        done: _StrOrPromise,
        logged: _StrOrPromise | None = None,
    ) -> None:
        self.name = name
        self.states = tuple(states)
        self.new_status = new_status
        self.verb = verb
        self.done = done
        self.logged = logged

    def apply(
        self, queryset: QuerySet[Any], field: str, **options: Any
    ) -> tuple[dict[str, int], int, list[tuple[Model, Status]] | None]:
        """Rewrite the rows of `queryset` in this operation's states.

        When few rows change, they are locked and read first, so the admin
        history can say what each one was.

        :returns: (tally of the selection before, number of rows changed,
            list of (row, previous status) or None when too many changed)
        """
        before, changed, rows, _left = self.apply_leaving(queryset, field, None, **options)
        return before, changed, rows

    def apply_leaving(
        self, queryset: QuerySet[Any], field: str, leave: Leave | None, **options: Any
    ) -> tuple[dict[str, int], int, list[tuple[Model, Status]] | None, dict[Any, Left]]:
        """:meth:`apply`, leaving as they are the rows `leave` names among
        those about to change (see :data:`Leave`): asked with each chunk of
        at most `CHUNK_ROWS` primary keys, in the transaction of the
        rewrite, after the rows it wrote before. Returns also what it left,
        by primary key."""
        # Counted, locked and written on the primary, in one transaction,
        # whatever database the page read the selection from.
        queryset = for_writes(queryset)
        in_states = ranges.in_states(field, *self.states)
        value = self.new_status(field, **options)
        base = queryset.model._base_manager.using(queryset.db)
        left: dict[Any, Left] = {}
        with transaction.atomic(using=queryset.db):
            before = Status.tally(queryset, field)
            if sum(before[state.name] for state in self.states) > ROWS_LOGGED_ONE_BY_ONE:
                if leave is None:
                    return before, queryset.filter(in_states).update(**{field: value}), None, left
                changed = 0
                for pks in pk_chunks(queryset.filter(in_states)):
                    left.update(leave(queryset.db, pks))
                    kept = [pk for pk in pks if pk not in left]
                    changed += base.filter(in_states, pk__in=kept).update(**{field: value})
                return before, changed, None, left
            pks = list(queryset.filter(in_states).values_list('pk', flat=True))
            rows = base.filter(in_states, pk__in=pks).select_for_update()
            locked = [(row, Status(getattr(row, field))) for row in rows]
            if leave is not None and locked:
                left = leave(queryset.db, [row.pk for row, _ in locked])
                locked = [(row, status) for row, status in locked if row.pk not in left]
            changed = base.filter(pk__in=[row.pk for row, _ in locked]).update(**{field: value})
        return before, changed, locked, left

    def run(
        self,
        model_admin: ModelAdmin[Any],
        request: HttpRequest,
        queryset: QuerySet[Any],
        field: str,
        **options: Any,
    ) -> int:
        """Apply the operation, tell the user what changed, and log it.

        A model admin's ``queue_rows_to_leave(field, operation)`` may name
        rows to leave (the Tasks admin: a task whose unique key another
        READY or RUNNING task holds); they are reported by name. A row that
        came to conflict between that look and the rewrite (the database
        refused it) makes the operation try again, up to `ATTEMPTS` times;
        then nothing changes, and the operator is told.
        """
        chooser = getattr(model_admin, 'queue_rows_to_leave', None)
        leave = chooser(field, self) if chooser is not None else None
        for _attempt in range(ATTEMPTS):
            try:
                before, changed, rows, left = self.apply_leaving(queryset, field, leave, **options)
                break
            except IntegrityError as error:
                if leave is None:
                    raise
                refused = error
        else:
            model_admin.message_user(
                request,
                _('Nothing was changed: the database refused it (%(error)s). Try again.')
                % {'error': refused},
                messages.ERROR,
            )
            return 0
        summary = self.report(model_admin, request, queryset.model, field, before, changed, left)
        if changed:
            log_operation(request, queryset.model, field, self, rows, summary)
        return changed

    def report(
        self,
        model_admin: ModelAdmin[Any],
        request: HttpRequest,
        model: type[Model],
        field: str,
        before: Mapping[str, int],
        changed: int,
        left: Mapping[Any, Left] | None = None,
    ) -> str:
        """Tell the user how many rows changed, by their previous state; return it.

        Rows in other states were left as they were, which is reported too,
        and so are the rows `left` names, each with why.
        """
        names = {state.name for state in self.states}
        label = field_label(model, field)
        left = left or {}
        kept_by_state = Counter(status.state.name for status, _why in left.values())
        changed_by_state = {name: n - kept_by_state[name] for name, n in before.items() if name in names}
        others = {name: n for name, n in before.items() if name not in names and n}
        message = self.done % {
            'count': changed,
            'items': model_ngettext(model._meta, changed),
            'states': states_text(changed_by_state) or '0',
            'field': label,
        }
        if changed or not left:  # not 'Requeued 0' when every row was left, and said why
            model_admin.message_user(request, message, messages.SUCCESS)
        if others:
            model_admin.message_user(
                request,
                _('Left as they were (%(field)s): %(states)s.')
                % {'field': label, 'states': states_text(others)},
                messages.WARNING,
            )
        if left:
            reasons = [why for _status, why in list(left.values())[:LEFT_NAMED]]
            more = len(left) - len(reasons)
            model_admin.message_user(
                request,
                _('Left %(count)s %(items)s as they were (%(field)s): %(reasons)s%(more)s.')
                % {
                    'count': len(left),
                    'items': model_ngettext(model._meta, len(left)),
                    'field': label,
                    'reasons': '; '.join(reasons),
                    'more': _(' and %(count)s more') % {'count': more} if more else '',
                },
                messages.WARNING,
            )
        return message


def field_label(model: type[Model], field: str) -> str:
    """The verbose name of `field`, as text."""
    return str(concrete_field(model, field).verbose_name)


def states_text(counts: Mapping[str, int]) -> str:
    """'3 waiting, 1 working': the non-zero counts of a tally, translated."""
    return ', '.join(
        f'{number} {STATE_LABELS[name]}' for name, number in counts.items() if number
    )


REQUEUE = Operation(
    'requeue',
    Status.states,
    lambda field: Status.waiting(now(), 0),
    _('requeued'),
    _('Requeued %(count)s %(items)s (%(field)s), previously %(states)s.'),
)
CANCEL = Operation(
    'cancel',
    (State.created, State.waiting, State.working),
    lambda field: with_state_and_priority(field, State.canceled, now()),
    _('canceled'),
    _('Canceled %(count)s %(items)s (%(field)s), previously %(states)s.'),
)
REPRIORITIZE = Operation(
    'reprioritize',
    (State.created, State.waiting),
    lambda field, priority: with_priority(field, priority),
    _('reprioritized'),
    _('Reprioritized %(count)s %(items)s (%(field)s), previously %(states)s.'),
)
RESET_ATTEMPTS = Operation(
    'reset_attempts',
    # Not working rows: the worker's outcome would be fenced off, and the row
    # would stay working with 0 attempts until the timeout, then run again.
    (State.created, State.waiting, State.finished, State.canceled),
    lambda field: with_attempts(field, 0),
    _('reset the attempts of'),
    _('Reset the attempts of %(count)s %(items)s (%(field)s), previously %(states)s.'),
)

#: Retry all failed rows matching the changelist's filters
#: (:mod:`modelqueue.admin.retry_failed`): canceled rows become waiting, due
#: now, with their attempts reset, as requeue makes them.
RETRY_FAILED = Operation(
    'retry_failed',
    (State.canceled,),
    lambda field: Status.waiting(now(), 0),
    _('retried'),
    _('Retried %(count)s %(items)s (%(field)s), previously %(states)s.'),
)

#: Every operation by name.
OPERATIONS = {
    operation.name: operation for operation in (REQUEUE, CANCEL, REPRIORITIZE, RESET_ATTEMPTS)
}

#: The operations of the change form's buttons: one click, no form.
ROW_OPERATIONS = {operation.name: operation for operation in (REQUEUE, CANCEL)}


def legacy_state_change(
    state: State, states: Iterable[State], done: _StrOrPromise, logged: _StrOrPromise
) -> Operation:
    """The 2.2.1 action that moves rows of `states` to `state`, keeping their
    priority and attempts."""
    return Operation(
        f'state_{state.name}',
        states,
        lambda field: with_state(field, state),
        _('changed the state of'),
        done,
        logged,
    )


# The actions of modelqueue 2.2.1, under the rules of the operations above. A
# row already in the target state is left (it would not change). A row a
# worker holds (working) is taken only by the changes an operator makes to
# stop it or run it again, as cancel and requeue take it: to canceled, and to
# waiting (it runs again). Made created or finished, or its priority or
# attempts rewritten, the worker's result would be fenced off and dropped
# with nothing to run the row again (as reset attempts and reprioritize
# decide); and making it working would change nothing.
LEGACY_OPERATIONS = {
    operation.name: operation
    for operation in (
        legacy_state_change(
            State.created,
            (State.waiting, State.finished, State.canceled),
            _('Changed %(count)s %(items)s (%(field)s) to created, previously %(states)s.'),
            _('Changed %(field)s to created, previously %(state)s.'),
        ),
        legacy_state_change(
            State.waiting,
            (State.created, State.working, State.finished, State.canceled),
            _('Changed %(count)s %(items)s (%(field)s) to waiting, previously %(states)s.'),
            _('Changed %(field)s to waiting, previously %(state)s.'),
        ),
        legacy_state_change(
            State.working,
            (State.created, State.waiting, State.finished, State.canceled),
            _('Changed %(count)s %(items)s (%(field)s) to working, previously %(states)s.'),
            _('Changed %(field)s to working, previously %(state)s.'),
        ),
        legacy_state_change(
            State.finished,
            (State.created, State.waiting, State.canceled),
            _('Changed %(count)s %(items)s (%(field)s) to finished, previously %(states)s.'),
            _('Changed %(field)s to finished, previously %(state)s.'),
        ),
        legacy_state_change(
            State.canceled,
            (State.created, State.waiting, State.working, State.finished),
            _('Changed %(count)s %(items)s (%(field)s) to canceled, previously %(states)s.'),
            _('Changed %(field)s to canceled, previously %(state)s.'),
        ),
        Operation(
            'priority_now',
            (State.created, State.waiting, State.finished, State.canceled),
            lambda field: with_priority(field, now()),
            _('changed the priority of'),
            _('Changed the priority of %(count)s %(items)s (%(field)s) to now, previously %(states)s.'),
            _('Changed the priority of %(field)s to now, previously %(state)s.'),
        ),
        RESET_ATTEMPTS,  # attempts to zero: the same rewrite, the same rows
    )
}
