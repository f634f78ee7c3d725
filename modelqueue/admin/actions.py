"""Admin actions that rewrite queue statuses with one UPDATE each."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import model_ngettext
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from .expressions import with_attempts, with_priority, with_state, with_state_and_priority
from .filters import STATE_LABELS
from .status import State, Status, datetime_to_priority, now


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


# The operations admin's actions (QueueAdminMixin): each one UPDATE, with the
# rows counted by state first, in the same transaction.

REQUEUE_FROM = tuple(Status.states)
CANCEL_FROM = (State.created, State.waiting, State.working)
REPRIORITIZE_FROM = (State.created, State.waiting)
RESET_FROM = tuple(Status.states)

#: Largest plain integer priority the reprioritize form accepts: 13 digits,
#: so it always sorts before every timestamp (the first is 10101000000000).
MAX_INTEGER_PRIORITY = 10**13 - 1


def _in_states(field, states):
    """Filter keyword arguments for `states`, which must be consecutive."""
    return {
        f'{field}__gte': Status.minimum(states[0]),
        f'{field}__lte': Status.maximum(states[-1]),
    }


def apply_update(queryset, field, states, value):
    """UPDATE `field` to `value` on rows of `queryset` in `states`.

    Counts the selection by state, then updates, in one transaction.

    :returns: (tally of the selection before, number of rows changed)
    """
    with transaction.atomic(using=queryset.db):
        before = Status.tally(queryset, field)
        changed = queryset.filter(**_in_states(field, states)).update(**{field: value})
    return before, changed


def _states_text(counts):
    return ', '.join(
        f'{number} {STATE_LABELS[name]}' for name, number in counts.items() if number
    )


def report(modeladmin, request, queryset, field, done, before, changed, states):
    """Tell the user how many rows `done` changed, by their previous state.

    `done` is a translatable message with ``%(count)s``, ``%(items)s``,
    ``%(states)s`` placeholders; rows in other states than `states` were left
    as they were, which is reported too.
    """
    names = {state.name for state in states}
    changed_by_state = {name: n for name, n in before.items() if name in names}
    left = {name: n for name, n in before.items() if name not in names and n}
    items = model_ngettext(queryset.model, changed)
    message = done % {
        'count': changed,
        'items': items,
        'states': _states_text(changed_by_state) or '0',
        'field': _field_label(queryset.model, field),
    }
    modeladmin.message_user(request, message, messages.SUCCESS)
    if left:
        modeladmin.message_user(
            request,
            _('Left as they were (%(field)s): %(states)s.')
            % {'field': _field_label(queryset.model, field), 'states': _states_text(left)},
            messages.WARNING,
        )


def _field_label(model, field):
    return str(model._meta.get_field(field).verbose_name)


def _selection_context(modeladmin, request, counts, field, title, states):
    opts = modeladmin.model._meta
    return {
        **modeladmin.admin_site.each_context(request),
        'title': title,
        'subtitle': None,
        'opts': opts,
        'media': modeladmin.media,
        'field_label': _field_label(modeladmin.model, field),
        'action_name': request.POST.get('action', ''),
        'select_across': request.POST.get('select_across') == '1',
        'selected': request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        'action_checkbox_name': helpers.ACTION_CHECKBOX_NAME,
        'objects_name': model_ngettext(modeladmin.model, sum(counts.values())),
        'tally': _tally_rows(counts, states),
        'total': sum(counts.values()),
        'changing': sum(counts[state.name] for state in states),
    }


def _tally_rows(counts, states):
    names = {state.name for state in states}
    return [
        {
            'name': name,
            'label': STATE_LABELS[name],
            'count': number,
            'changes': name in names,
        }
        for name, number in counts.items()
    ]


class ReprioritizeForm(forms.Form):
    """When the selected rows should run: now, at a date and time, or first."""

    WHEN_CHOICES = [
        ('now', _('Run now')),
        ('at', _('Run at a date and time')),
        ('integer', _('Run first, by an integer priority')),
    ]
    when = forms.ChoiceField(
        label=_('When'), choices=WHEN_CHOICES, initial='now', widget=forms.RadioSelect
    )
    at = forms.DateTimeField(
        label=_('Date and time'),
        required=False,
        help_text=_('For example 2030-01-31 14:30 (in the time zone of the site).'),
    )
    priority = forms.IntegerField(
        label=_('Integer priority'),
        required=False,
        min_value=0,
        max_value=MAX_INTEGER_PRIORITY,
        help_text=_(
            'From 0 through 9999999999999 (13 digits): lower runs first, and every'
            ' integer priority runs before every timestamped row.'
        ),
        error_messages={
            'min_value': _('%(show_value)s is negative: expected an integer from 0 through %(limit_value)s.'),
            'max_value': _(
                '%(show_value)s is too large: expected an integer from 0 through'
                ' %(limit_value)s (13 digits), which runs before every timestamped row.'
            ),
        },
    )

    def clean(self):
        cleaned = super().clean()
        when = cleaned.get('when')
        if when == 'at' and cleaned.get('at') is None and 'at' not in self.errors:
            self.add_error('at', _('Enter the date and time to run at.'))
        if when == 'at' and cleaned.get('at') is not None:
            try:
                datetime_to_priority(cleaned['at'])
            except ValueError:
                self.add_error(
                    'at',
                    _('%(value)s is outside the years 1 through 9999 in UTC.')
                    % {'value': self.data.get(self.add_prefix('at'))},
                )
        if when == 'integer' and cleaned.get('priority') is None and 'priority' not in self.errors:
            self.add_error('priority', _('Enter an integer priority.'))
        return cleaned

    def priority_value(self):
        """The priority chosen: a datetime or an integer."""
        when = self.cleaned_data['when']
        if when == 'at':
            return self.cleaned_data['at']
        if when == 'integer':
            return self.cleaned_data['priority']
        return now()


def queue_actions(field, several=False):
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

    def action(name, description):
        def decorate(function):
            function.__name__ = function.__qualname__ = name
            return admin.action(
                description=format_lazy('{}{}', description, suffix),
                permissions=['change'],
            )(function)

        return decorate

    @action(f'requeue_{field}', _('Requeue selected %(verbose_name_plural)s (due now, 0 attempts)'))
    def requeue(modeladmin, request, queryset):
        before, changed = apply_update(
            queryset, field, REQUEUE_FROM, Status.waiting(now(), 0)
        )
        report(
            modeladmin, request, queryset, field,
            _('Requeued %(count)s %(items)s (%(field)s), previously %(states)s.'),
            before, changed, REQUEUE_FROM,
        )

    @action(f'cancel_{field}', _('Cancel selected %(verbose_name_plural)s'))
    def cancel(modeladmin, request, queryset):
        if request.POST.get('post') == 'yes':
            before, changed = apply_update(
                queryset, field, CANCEL_FROM,
                with_state_and_priority(field, State.canceled, now()),
            )
            report(
                modeladmin, request, queryset, field,
                _('Canceled %(count)s %(items)s (%(field)s), previously %(states)s.'),
                before, changed, CANCEL_FROM,
            )
            return None
        counts = Status.tally(queryset, field)
        context = _selection_context(
            modeladmin, request, counts, field, _('Cancel queue rows'), CANCEL_FROM
        )
        return TemplateResponse(request, 'modelqueue/cancel_confirmation.html', context)

    @action(f'reprioritize_{field}', _('Reprioritize selected %(verbose_name_plural)s'))
    def reprioritize(modeladmin, request, queryset):
        if 'apply' in request.POST:
            form = ReprioritizeForm(request.POST, prefix='reprioritize')
            if form.is_valid():
                before, changed = apply_update(
                    queryset, field, REPRIORITIZE_FROM,
                    with_priority(field, form.priority_value()),
                )
                report(
                    modeladmin, request, queryset, field,
                    _('Reprioritized %(count)s %(items)s (%(field)s), previously %(states)s.'),
                    before, changed, REPRIORITIZE_FROM,
                )
                return None
        else:
            form = ReprioritizeForm(prefix='reprioritize')
        counts = Status.tally(queryset, field)
        context = _selection_context(
            modeladmin, request, counts, field, _('Reprioritize queue rows'), REPRIORITIZE_FROM
        )
        context['form'] = form
        return TemplateResponse(request, 'modelqueue/reprioritize.html', context)

    @action(f'reset_{field}_attempts', _('Reset attempts of selected %(verbose_name_plural)s to 0'))
    def reset_attempts(modeladmin, request, queryset):
        before, changed = apply_update(queryset, field, RESET_FROM, with_attempts(field, 0))
        report(
            modeladmin, request, queryset, field,
            _('Reset the attempts of %(count)s %(items)s (%(field)s), previously %(states)s.'),
            before, changed, RESET_FROM,
        )

    return [requeue, cancel, reprioritize, reset_attempts]
