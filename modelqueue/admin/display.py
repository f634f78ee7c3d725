"""How the admin shows a status: state badges, natural times, the columns.

>>> print(status_state_html(Status.canceled(123)))
<span class="modelqueue-badge modelqueue-canceled">canceled</span>
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.utils.html import format_html
from django.utils.text import format_lazy
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as gettext_now
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..status import DECODED_PARTS, State, Status, now
from ..validation import concrete_field

if TYPE_CHECKING:
    from django.db.models import Model
    from django.utils.functional import _StrOrPromise
    from django.utils.safestring import SafeString

#: Translatable names of the states, for everything the admin shows.
STATE_LABELS = {
    State.created.name: _('created'),
    State.waiting.name: _('waiting'),
    State.working.name: _('working'),
    State.finished.name: _('finished'),
    State.canceled.name: _('canceled'),
}


def duration_text(delta: dt.timedelta) -> str:
    """'1 hour', '2 days, 3 hours': a timedelta in words."""
    current = now()
    return timesince(current - delta, current, depth=2)


def natural_time(moment: dt.datetime, current: dt.datetime) -> str:
    """'3 minutes ago', 'in 2 hours', or 'within a minute' of `current`."""
    if abs(current - moment) < dt.timedelta(minutes=1):
        return gettext_now('within a minute')
    if moment <= current:
        return gettext_now('%(delta)s ago') % {'delta': timesince(moment, current, depth=1)}
    return gettext_now('in %(delta)s') % {'delta': timeuntil(moment, current, depth=1)}


def status_when_html(status: int, current: dt.datetime | None = None) -> SafeString:
    """Return HTML for the priority of `status`: natural time, exact UTC on hover.

    >>> current = dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc)
    >>> html = status_when_html(Status.waiting(current - dt.timedelta(minutes=3)), current)
    >>> print(html.replace('\xa0', ' '))  # timesince uses no-break spaces
    <time datetime="2030-01-01T11:57:00Z" title="2030-01-01 11:57:00.000 UTC">3 minutes ago</time>
    >>> print(status_when_html(Status.waiting(123), current))
    <span class="modelqueue-integer-priority" title="integer priority">priority 123</span>
    """
    current = now() if current is None else current
    _state, priority, _attempts = Status(status).parse()
    if not isinstance(priority, dt.datetime):
        return format_html(
            '<span class="modelqueue-integer-priority" title="{}">{}</span>',
            _('integer priority'),
            _('priority %(priority)s') % {'priority': priority},
        )
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        priority.strftime('%Y-%m-%dT%H:%M:%SZ'),
        priority.strftime('%Y-%m-%d %H:%M:%S.') + f'{priority.microsecond // 1000:03d}',
        natural_time(priority, current),
    )


def status_state_html(status: int) -> SafeString:
    """Return the state of `status` as a coloured badge (translated name)."""
    name = Status(status).state.name
    return format_html(
        '<span class="modelqueue-badge modelqueue-{}">{}</span>', name, STATE_LABELS[name]
    )


def status_summary_html(status: Status) -> SafeString:
    """The state badge, the time and the attempts of `status`, on one line."""
    return format_html(
        '{} {} · {}',
        status_state_html(status),
        status_when_html(status),
        ngettext('%(attempts)s attempt', '%(attempts)s attempts', status.attempts)
        % {'attempts': status.attempts},
    )


def column_name(field: str, part: str) -> str:
    """The model admin attribute of a queue column: ``queue_<field>_<part>``."""
    return f'queue_{field}_{part}'


def status_columns(
    model: type[Model], field: str, several: bool = False
) -> dict[str, Callable[[Model], object]]:
    """Return the columns of the queue `field`: state, when, attempts, decoded.

    A mapping of attribute name (see `column_name`) to an ``@admin.display``
    function of a row. With `several` queue fields on one model, the column
    titles name the field. A stored value that is not a status is shown as
    it is, marked invalid.
    """
    label = concrete_field(model, field).verbose_name

    def titled(text: _StrOrPromise) -> _StrOrPromise:
        return format_lazy('{} {}', label, text) if several else text

    def column(
        render: Callable[[Status], object], description: _StrOrPromise, ordering: str | None = None
    ) -> Callable[[Model], object]:
        @admin.display(description=description, ordering=ordering)
        def show(obj: Model) -> object:
            value: Any = getattr(obj, field, None)
            try:
                status = Status(value)
            except ValueError:  # not written by modelqueue: show it as it is
                return format_html(
                    '<span class="modelqueue-invalid" title="{}">{}</span>',
                    _('not a valid status'),
                    value,
                )
            return render(status)

        return show

    state, when, attempts = DECODED_PARTS
    return {
        column_name(field, state): column(status_state_html, titled(_('state')), field),
        column_name(field, when): column(status_when_html, titled(_('when')), field),
        column_name(field, attempts): column(
            lambda status: status.attempts, titled(_('attempts'))
        ),
        column_name(field, 'decoded'): column(
            status_summary_html, format_lazy('{} ({})', label, _('decoded'))
        ),
    }
