"""QueueAdminMixin: the operations admin of a model's queue fields.

One line in a project's admin.py::

    @admin.register(Task)
    class TaskAdmin(QueueAdminMixin, admin.ModelAdmin):
        queue_fields = ['status']      # the default

adds, for each queue field: a state filter (with due, scheduled and
stalled), decoded columns (state, when, attempts), bulk actions (requeue,
cancel, reprioritize, reset attempts), requeue and cancel buttons on the
change form, and a dashboard page with its JSON endpoint. Everything the
subclass declares (list_display, list_filter, actions, templates) is kept.
"""

import copy
import datetime as dt
from functools import update_wrapper

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.template.loader import select_template
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import format_lazy
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as gettext_now
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import views
from .actions import queue_actions
from .filters import STATE_LABELS, queue_list_filter
from .status import ONE_HOUR, Status, now


def _check_status(value):
    try:
        Status(value)
    except ValueError as error:
        raise ValidationError(str(error), code='invalid_status') from None


def _natural_time(moment, current):
    if abs(current - moment) < dt.timedelta(minutes=1):
        return gettext_now('within a minute')
    if moment <= current:
        return gettext_now('%(delta)s ago') % {'delta': timesince(moment, current, depth=1)}
    return gettext_now('in %(delta)s') % {'delta': timeuntil(moment, current, depth=1)}


def status_when_html(status, current=None):
    """Return HTML for the priority of `status`: natural time, exact UTC on hover.

    >>> import datetime as dt
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
        _natural_time(priority, current),
    )


def status_state_html(status):
    """Return the state of `status` as a coloured badge (translated name).

    >>> print(status_state_html(Status.canceled(123)))
    <span class="modelqueue-badge modelqueue-canceled">canceled</span>
    """
    name = Status(status).state.name
    return format_html(
        '<span class="modelqueue-badge modelqueue-{}">{}</span>', name, STATE_LABELS[name]
    )


class QueueAdminMixin:
    """Operations admin for the queue fields of a model.

    Options:

    - ``queue_fields``: the status fields to operate (default ``['status']``)
    - ``queue_timeout``: how long a row may stay working before the
      dashboard and the filter call it stalled (default one hour, as run())
    - ``queue_refresh_seconds``: how often the dashboard refreshes (5)

    The query parameter of each state filter is ``<field>_queue``, as with
    :func:`modelqueue.admin_list_filter`.

    >>> from django.contrib import admin
    >>> from tests.testapp.models import Task
    >>> class TaskAdmin(QueueAdminMixin, admin.ModelAdmin):
    ...     actions = ['delete_selected']
    >>> task_admin = TaskAdmin(Task, admin.AdminSite(name='example'))
    >>> task_admin.actions
    ['delete_selected', <function requeue_status ...>, <function cancel_status ...>, <function reprioritize_status ...>, <function reset_status_attempts ...>]
    """

    queue_fields = ['status']
    queue_timeout = ONE_HOUR
    queue_refresh_seconds = 5

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        self._check_queue_fields()
        several = len(self.queue_fields) > 1
        declared = list(self.actions or ())
        self.actions = [
            *declared,
            *(action for field in self.queue_fields for action in queue_actions(field, several)),
        ]
        for field in self.queue_fields:
            for name, column in self._queue_columns(field).items():
                setattr(self, name, column)
        self.queue_base_change_list_template = self.change_list_template
        self.change_list_template = 'modelqueue/change_list.html'
        self.queue_base_change_form_template = self.change_form_template
        self.change_form_template = 'modelqueue/change_form.html'
        if admin_site.index_template is None:
            admin_site.index_template = 'modelqueue/index.html'

    def _check_queue_fields(self):
        opts = self.model._meta
        if isinstance(self.queue_fields, str) or not self.queue_fields:
            raise ImproperlyConfigured(
                f'{type(self).__name__}.queue_fields is {self.queue_fields!r}:'
                ' expected a non-empty list of status field names'
            )
        for field in self.queue_fields:
            try:
                model_field = opts.get_field(field)
            except Exception:
                raise ImproperlyConfigured(
                    f'{type(self).__name__}.queue_fields names {field!r}, but'
                    f' {opts.label} has no such field'
                ) from None
            if model_field.get_internal_type() != 'BigIntegerField':
                raise ImproperlyConfigured(
                    f'{type(self).__name__}.queue_fields names {field!r}, but it is'
                    f' a {type(model_field).__name__}: expected a'
                    ' modelqueue.StatusField (BigIntegerField)'
                )

    # Columns and the change form.

    def _queue_columns(self, field):
        label = self.model._meta.get_field(field).verbose_name
        several = len(self.queue_fields) > 1

        def titled(text):
            return format_lazy('{} {}', label, text) if several else text

        def shown(render):
            def column(obj):
                value = getattr(obj, field, None)
                try:
                    status = Status(value)
                except ValueError:  # not written by modelqueue: show it as it is
                    return format_html(
                        '<span class="modelqueue-invalid" title="{}">{}</span>',
                        _('not a valid status'),
                        value,
                    )
                return render(status)

            return column

        state = shown(status_state_html)
        when = shown(status_when_html)
        attempts = shown(lambda status: status.attempts)
        decoded = shown(
            lambda status: format_html(
                '{} {} · {}',
                status_state_html(status),
                status_when_html(status),
                ngettext('%(attempts)s attempt', '%(attempts)s attempts', status.attempts)
                % {'attempts': status.attempts},
            )
        )
        state.short_description = titled(_('state'))
        state.admin_order_field = field
        when.short_description = titled(_('when'))
        when.admin_order_field = field
        attempts.short_description = titled(_('attempts'))
        decoded.short_description = format_lazy('{} ({})', label, _('decoded'))
        return {
            f'queue_{field}_state': state,
            f'queue_{field}_when': when,
            f'queue_{field}_attempts': attempts,
            f'queue_{field}_decoded': decoded,
        }

    def get_list_display(self, request):
        columns = [
            f'queue_{field}_{part}'
            for field in self.queue_fields
            for part in ('state', 'when', 'attempts')
        ]
        declared = list(super().get_list_display(request))
        return [*declared, *(column for column in columns if column not in declared)]

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        for field in self.queue_fields:
            detailed = queue_list_filter(field, self.queue_timeout)
            for index, declared in enumerate(filters):
                if getattr(declared, 'parameter_name', None) == detailed.parameter_name:
                    filters[index] = detailed  # the same filter, with more choices
                    break
            else:
                filters.append(detailed)
        return filters

    def get_readonly_fields(self, request, obj=None):
        declared = list(super().get_readonly_fields(request, obj))
        decoded = [f'queue_{field}_decoded' for field in self.queue_fields]
        return [*declared, *(name for name in decoded if name not in declared)]

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if self.fields is None:
            decoded = {f'queue_{field}_decoded' for field in self.queue_fields}
            fields = [name for name in fields if name not in decoded]
        return fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = copy.deepcopy(list(super().get_fieldsets(request, obj)))
        present = set()
        for _name, options in fieldsets:
            for entry in options.get('fields', ()):
                present.update(entry if isinstance(entry, (list, tuple)) else [entry])
        for _name, options in fieldsets:
            fields = list(options.get('fields', ()))
            for field in self.queue_fields:
                decoded = f'queue_{field}_decoded'
                if field in fields and decoded not in present:
                    fields.insert(fields.index(field) + 1, decoded)
                    present.add(decoded)
            options['fields'] = fields
        return fieldsets

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in self.queue_fields and formfield is not None:
            formfield.validators.append(_check_status)
            formfield.widget.attrs['class'] = 'modelqueue-status-input'
            formfield.help_text = _(
                '19 digits: the state (1 created, 2 waiting, 3 working, 4 finished,'
                ' 5 canceled), the priority (a UTC timestamp yyyymmddHHMMSSmmm or an'
                ' integer) and the attempts digit.'
            )
        return formfield

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        for field in self.queue_fields:
            if field not in initial and not self.model._meta.get_field(field).has_default():
                initial[field] = Status.waiting()
        return initial

    @property
    def media(self):
        return super().media + forms.Media(css={'all': ['modelqueue/admin.css']})

    # Templates: ours extend whatever the subclass (or Django) would use.

    def _admin_templates(self, declared, page):
        if declared:
            return [declared] if isinstance(declared, str) else list(declared)
        opts = self.model._meta
        return [
            f'admin/{opts.app_label}/{opts.model_name}/{page}.html',
            f'admin/{opts.app_label}/{page}.html',
            f'admin/{page}.html',
        ]

    def response_action(self, request, queryset, **kwargs):
        """Refuse a selection that holds no primary keys, with a message.

        The changelist only ever posts primary keys; a forged value would
        otherwise reach ``pk__in`` and end in a server error.
        """
        if not request.POST.get('select_across') == '1':
            try:
                for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                    self.model._meta.pk.to_python(value)
            except ValidationError:
                self.message_user(
                    request,
                    _('The selection %(selection)s is not a list of row ids.')
                    % {'selection': request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)},
                    messages.ERROR,
                )
                return None
        return super().response_action(request, queryset, **kwargs)

    def changelist_view(self, request, extra_context=None):
        opts = self.model._meta
        context = {
            'modelqueue_base_template': select_template(
                self._admin_templates(self.queue_base_change_list_template, 'change_list')
            ),
            'modelqueue_dashboard_url': reverse(
                f'admin:{opts.app_label}_{opts.model_name}_dashboard',
                current_app=self.admin_site.name,
            ),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def changeform_view(self, request, object_id=None, form_url='', extra_context=None):
        context = {
            'modelqueue_base_template': select_template(
                self._admin_templates(self.queue_base_change_form_template, 'change_form')
            ),
            **(extra_context or {}),
        }
        if object_id is not None:
            opts = self.model._meta
            context['modelqueue_row_actions'] = [
                {
                    'label': str(opts.get_field(field).verbose_name),
                    'requeue_url': reverse(
                        f'admin:{opts.app_label}_{opts.model_name}_queue_row',
                        args=[object_id, field, 'requeue'],
                        current_app=self.admin_site.name,
                    ),
                    'cancel_url': reverse(
                        f'admin:{opts.app_label}_{opts.model_name}_queue_row',
                        args=[object_id, field, 'cancel'],
                        current_app=self.admin_site.name,
                    ),
                }
                for field in self.queue_fields
            ]
        return super().changeform_view(request, object_id, form_url, context)

    # Pages of our own.

    def get_urls(self):
        opts = self.model._meta
        name = f'{opts.app_label}_{opts.model_name}'

        def wrap(view):
            def wrapper(*args, **kwargs):
                return self.admin_site.admin_view(view)(*args, **kwargs)

            wrapper.model_admin = self
            return update_wrapper(wrapper, view)

        urls = [
            path('dashboard/', wrap(self.dashboard_view), name=f'{name}_dashboard'),
            path(
                'dashboard/data/',
                wrap(self.dashboard_data_view),
                name=f'{name}_dashboard_data',
            ),
            path(
                '<path:object_id>/queue/<str:field>/<str:operation>/',
                wrap(self.queue_row_view),
                name=f'{name}_queue_row',
            ),
        ]
        if self is self.first_queue_admin(self.admin_site):
            urls.append(
                path(
                    'dashboard/overview/',
                    self.admin_site.admin_view(self.overview_view),
                    name='modelqueue_overview',
                )
            )
        return urls + super().get_urls()

    @staticmethod
    def queue_admins(admin_site):
        """The model admins of `admin_site` that use QueueAdminMixin."""
        return [
            model_admin
            for model_admin in admin_site._registry.values()
            if isinstance(model_admin, QueueAdminMixin)
        ]

    @classmethod
    def first_queue_admin(cls, admin_site):
        """The model admin that serves the site's overview of every queue."""
        admins = cls.queue_admins(admin_site)
        return admins[0] if admins else None

    def dashboard_view(self, request):
        return views.dashboard(request, self)

    def dashboard_data_view(self, request):
        return views.dashboard_data(request, self)

    def queue_row_view(self, request, object_id, field, operation):
        return views.queue_row(request, self, object_id, field, operation)

    def overview_view(self, request):
        return views.overview(request, self.admin_site, self.queue_admins(self.admin_site))

