"""The form of the reprioritize action: now, at a date and time, or first."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from ..status import datetime_to_priority, now

#: Largest plain integer priority the form accepts: 13 digits, so it always
#: sorts before every timestamp (the first is 10101000000000).
MAX_INTEGER_PRIORITY = 10**13 - 1


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
            'min_value': _(
                '%(show_value)s is negative: expected an integer from 0 through'
                ' %(limit_value)s.'
            ),
            'max_value': _(
                '%(show_value)s is too large: expected an integer from 0 through'
                ' %(limit_value)s (13 digits), which runs before every timestamped row.'
            ),
        },
    )

    def clean(self) -> dict[str, Any]:
        cleaned = cast('dict[str, Any]', super().clean())  # Form.clean() returns cleaned_data
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

    def priority_value(self) -> dt.datetime | int:
        """The priority chosen: a datetime or an integer."""
        when = self.cleaned_data['when']
        if when == 'at':
            return self.cleaned_data['at']
        if when == 'integer':
            return self.cleaned_data['priority']
        return now()
