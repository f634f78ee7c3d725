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

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.utils import model_ngettext
from django.db import transaction
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
        # Counted, locked and written on the primary, in one transaction,
        # whatever database the page read the selection from.
        queryset = for_writes(queryset)
        in_states = ranges.in_states(field, *self.states)
        value = self.new_status(field, **options)
        with transaction.atomic(using=queryset.db):
            before = Status.tally(queryset, field)
            if sum(before[state.name] for state in self.states) > ROWS_LOGGED_ONE_BY_ONE:
                return before, queryset.filter(in_states).update(**{field: value}), None
            pks = list(queryset.filter(in_states).values_list('pk', flat=True))
            rows = (
                queryset.model._base_manager.using(queryset.db)
                .filter(in_states, pk__in=pks)
                .select_for_update()
            )
            locked = [(row, Status(getattr(row, field))) for row in rows]
            changed = (
                queryset.model._base_manager.using(queryset.db)
                .filter(pk__in=[row.pk for row, _ in locked])
                .update(**{field: value})
            )
        return before, changed, locked

    def run(
        self,
        model_admin: ModelAdmin[Any],
        request: HttpRequest,
        queryset: QuerySet[Any],
        field: str,
        **options: Any,
    ) -> int:
        """Apply the operation, tell the user what changed, and log it."""
        before, changed, rows = self.apply(queryset, field, **options)
        summary = self.report(model_admin, request, queryset.model, field, before, changed)
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
    ) -> str:
        """Tell the user how many rows changed, by their previous state; return it.

        Rows in other states were left as they were, which is reported too.
        """
        names = {state.name for state in self.states}
        label = field_label(model, field)
        changed_by_state = {name: n for name, n in before.items() if name in names}
        left = {name: n for name, n in before.items() if name not in names and n}
        message = self.done % {
            'count': changed,
            'items': model_ngettext(model._meta, changed),
            'states': states_text(changed_by_state) or '0',
            'field': label,
        }
        model_admin.message_user(request, message, messages.SUCCESS)
        if left:
            model_admin.message_user(
                request,
                _('Left as they were (%(field)s): %(states)s.')
                % {'field': label, 'states': states_text(left)},
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
