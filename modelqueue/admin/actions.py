"""Admin actions that rewrite queue statuses with one UPDATE each.

`queue_actions` gives the operations admin's actions (see
:mod:`modelqueue.admin.operations`); `admin_actions` the actions of
modelqueue 2.2.1, for projects moving from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import ModelAdmin, helpers
from django.contrib.admin.utils import model_ngettext
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from ..status import Status
from .display import STATE_LABELS
from .forms import ReprioritizeForm
from .operations import (
    CANCEL,
    LEGACY_OPERATIONS,
    REPRIORITIZE,
    REQUEUE,
    RESET_ATTEMPTS,
    field_label,
)
from .templates import template_names

if TYPE_CHECKING:
    from typing import TypeAlias

    from django.db.models import QuerySet
    from django.http import HttpRequest, HttpResponse
    from django.utils.functional import _StrOrPromise

    from .operations import Operation

    #: An admin action: called with the model admin, the request and the selection.
    AdminAction: TypeAlias = Callable[[ModelAdmin[Any], HttpRequest, QuerySet[Any]], HttpResponse | None]


def admin_actions(field: str) -> list[AdminAction]:
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

    Each action follows the rules of the operations admin's actions (see
    :mod:`modelqueue.admin.operations`): it needs the change permission, and
    the model admin's ``has_change_permission(request, row)`` for every
    selected row (one refusal changes nothing); it rewrites the selected
    rows with one UPDATE, tells the user how many changed and which were
    left as they were, and writes the admin history. A row a worker holds
    (working) is left to it, except by the changes to canceled and to
    waiting, which take it as cancel and requeue do. A stored value that is
    not a status is left as it is.

    >>> [action.__name__ for action in admin_actions('status')][-2:]
    ['make_status_priority_now', 'make_status_attempts_zero']

    :param str field: field name
    :returns: Django admin actions

    """
    display_name = field.replace('_', ' ')

    def make_action(name: str, description: str, operation: Operation) -> AdminAction:
        @admin.action(description=description, permissions=['change'])
        def action(modeladmin: ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]) -> None:
            if may_change_each(modeladmin, request, queryset):
                operation.run(modeladmin, request, queryset, field)

        action.__name__ = name
        return action

    actions = [
        make_action(
            f'make_{field}_state_{state.name}',
            f'Change {display_name} state to {state.name}',
            LEGACY_OPERATIONS[f'state_{state.name}'],
        )
        for state in Status.states
    ]
    actions.append(
        make_action(
            f'make_{field}_priority_now',
            f'Change {display_name} priority to now',
            LEGACY_OPERATIONS['priority_now'],
        )
    )
    actions.append(
        make_action(
            f'make_{field}_attempts_zero',
            f'Change {display_name} attempts to zero',
            LEGACY_OPERATIONS['reset_attempts'],
        )
    )
    return actions


def queue_actions(field: str, several: bool = False) -> list[AdminAction]:
    """Return the operations admin's actions for the queue `field`.

    Requeue, cancel (after a confirmation page), reprioritize (after a form)
    and reset attempts: each one UPDATE over the selection, needing the
    change permission. With `several` queue fields on one model, the
    descriptions name the field.

    >>> [action.__name__ for action in queue_actions('status')]
    ['requeue_status', 'cancel_status', 'reprioritize_status', 'reset_status_attempts']

    :param str field: field name
    :param bool several: whether the model admin has more than one queue field
    :returns: list of admin actions
    """
    suffix = f' ({field.replace("_", " ")})' if several else ''

    def action(name: str, description: _StrOrPromise) -> Callable[[AdminAction], AdminAction]:
        def decorate(function: AdminAction) -> AdminAction:
            function.__name__ = function.__qualname__ = name
            return admin.action(
                description=format_lazy('{}{}', description, suffix),
                permissions=['change'],
            )(function)

        return decorate

    @action(f'requeue_{field}', _('Requeue selected %(verbose_name_plural)s (due now, 0 attempts)'))
    def requeue(modeladmin: ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]) -> None:
        if may_change_each(modeladmin, request, queryset):
            REQUEUE.run(modeladmin, request, queryset, field)

    @action(f'cancel_{field}', _('Cancel selected %(verbose_name_plural)s'))
    def cancel(
        modeladmin: ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
    ) -> HttpResponse | None:
        if not may_change_each(modeladmin, request, queryset):
            return None
        if request.POST.get('post') == 'yes':
            CANCEL.run(modeladmin, request, queryset, field)
            return None
        return selection_page(
            modeladmin, request, queryset, field, CANCEL, _('Cancel queue rows'),
            'cancel_confirmation',
        )

    @action(f'reprioritize_{field}', _('Reprioritize selected %(verbose_name_plural)s'))
    def reprioritize(
        modeladmin: ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
    ) -> HttpResponse | None:
        if not may_change_each(modeladmin, request, queryset):
            return None
        if 'apply' in request.POST:
            form = ReprioritizeForm(request.POST, prefix='reprioritize')
            if form.is_valid():
                REPRIORITIZE.run(
                    modeladmin, request, queryset, field, priority=form.priority_value()
                )
                return None
        else:
            form = ReprioritizeForm(prefix='reprioritize')
        return selection_page(
            modeladmin, request, queryset, field, REPRIORITIZE, _('Reprioritize queue rows'),
            'reprioritize', form=form,
        )

    @action(f'reset_{field}_attempts', _('Reset attempts of selected %(verbose_name_plural)s to 0'))
    def reset_attempts(
        modeladmin: ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
    ) -> None:
        if may_change_each(modeladmin, request, queryset):
            RESET_ATTEMPTS.run(modeladmin, request, queryset, field)

    return [requeue, cancel, reprioritize, reset_attempts]


def may_change_each(modeladmin: ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]) -> bool:
    """Whether the user may change every selected row; if not, say which.

    As Django's ``delete_selected`` checks each object: when the model admin
    overrides ``has_change_permission``, it is asked about every row (Django's
    own ignores the row, so then nothing needs reading). A model admin with
    ``get_queue_changeable(request, queryset)`` (the rows the user may
    change, as a queryset) is answered with one query instead, so "select
    all" on a million rows loads none of them. One row refused refuses the
    whole action, and nothing changes.
    """
    if type(modeladmin).has_change_permission is ModelAdmin.has_change_permission:
        return True
    changeable: Callable[[HttpRequest, QuerySet[Any]], QuerySet[Any]] | None = getattr(
        modeladmin, 'get_queue_changeable', None
    )
    if changeable is not None:
        refused_rows = queryset.exclude(pk__in=changeable(request, queryset).values('pk'))
        count = refused_rows.count()
        refused = list(refused_rows.order_by('pk')[:5])
    else:
        # In a transaction, so that a server-side cursor is not one WITH HOLD,
        # which outlives it: through a transaction pooler (PgBouncer) the next
        # fetch may reach another server session.
        with transaction.atomic(using=queryset.db):
            refused = [
                row
                for row in queryset.iterator(chunk_size=2000)
                if not modeladmin.has_change_permission(request, row)
            ]
        count = len(refused)
    if not count:
        return True
    shown = ', '.join(str(row) for row in refused[:5]) + (', ...' if count > 5 else '')
    modeladmin.message_user(
        request,
        _(
            'Nothing was changed: you may not change %(count)s of the selected'
            ' %(items)s (%(rows)s).'
        )
        % {
            'count': count,
            'items': model_ngettext(modeladmin.model._meta, count),
            'rows': shown,
        },
        messages.ERROR,
    )
    return False


def selection_page(
    modeladmin: ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    field: str,
    operation: Operation,
    title: _StrOrPromise,
    page: str,
    **extra: Any,
) -> TemplateResponse:
    """A page that asks about `operation` on the selection, counted by state.

    Its template is the model admin's ``queue_<page>_template``, or the
    first found of the model's, the app's and ours (see `template_names`).
    """
    context = {**selection_context(modeladmin, request, queryset, field, title, operation), **extra}
    declared = getattr(modeladmin, f'queue_{page}_template', None)
    return TemplateResponse(request, template_names(modeladmin.model._meta, declared, page), context)


def selection_context(
    modeladmin: ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    field: str,
    title: _StrOrPromise,
    operation: Operation,
) -> dict[str, Any]:
    """The context of a page that asks about an action on the selection."""
    counts = Status.tally(queryset, field)
    changes = {state.name for state in operation.states}
    opts = modeladmin.model._meta
    return {
        **modeladmin.admin_site.each_context(request),
        'title': title,
        'subtitle': None,
        'opts': opts,
        'media': modeladmin.media,
        'field_label': field_label(modeladmin.model, field),
        'action_name': request.POST.get('action', ''),
        'select_across': request.POST.get('select_across') == '1',
        'selected': request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        'action_checkbox_name': helpers.ACTION_CHECKBOX_NAME,
        'objects_name': model_ngettext(modeladmin.model._meta, sum(counts.values())),
        'tally': [
            {
                'name': name,
                'label': STATE_LABELS[name],
                'count': number,
                'changes': name in changes,
            }
            for name, number in counts.items()
        ],
        'total': sum(counts.values()),
        'changing': sum(counts[name] for name in changes),
    }
