"""Admin actions that rewrite queue statuses with one UPDATE each."""

from django.contrib import admin

from .expressions import with_attempts, with_priority, with_state
from .status import Status, now


def admin_actions(field):
    """Return Django admin actions for `field` describing model queue.

    The actions of modelqueue 2.2.1, for projects moving from it:

    1. Change state to created, waiting, working, finished, or canceled.
    2. Change priority to now.
    3. Change attempts to zero.

    For example in appname/admin.py::

        class TaskAdmin(admin.ModelAdmin):
            actions = [
                *modelqueue.admin_actions('status'),
                # ^-- Add actions to admin for status field.
            ]

    Each action is one UPDATE over the selection and needs the change
    permission.

    >>> [action.__name__ for action in admin_actions('status')][-2:]
    ['make_status_priority_now', 'make_status_attempts_zero']

    :param str field: field name
    :returns: Django admin actions

    """
    display_name = field.replace('_', ' ')

    def make_action(name, description, expression):
        @admin.action(description=description, permissions=['change'])
        def action(modeladmin, request, queryset):
            queryset.update(**{field: expression()})

        action.__name__ = name
        return action

    actions = [
        make_action(
            f'make_{field}_state_{state.name}',
            f'Change {display_name} state to {state.name}',
            lambda state=state: with_state(field, state),
        )
        for state in Status.states
    ]
    actions.append(
        make_action(
            f'make_{field}_priority_now',
            f'Change {display_name} priority to now',
            lambda: with_priority(field, now()),
        )
    )
    actions.append(
        make_action(
            f'make_{field}_attempts_zero',
            f'Change {display_name} attempts to zero',
            lambda: with_attempts(field, 0),
        )
    )
    return actions
