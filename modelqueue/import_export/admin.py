"""Import and export buttons on a queue model's changelist, statuses decoded.

For example in appname/admin.py::

    from modelqueue.import_export.admin import QueueImportExportMixin

    @admin.register(Task)
    class TaskAdmin(QueueImportExportMixin, admin.ModelAdmin):
        queue_fields = ['status']  # the default

It combines with ``QueueAdminMixin`` (list it first). Export writes the
changelist's current selection (its filters and search) with every queue
field decoded (see :mod:`modelqueue.import_export.resources`); import shows
django-import-export's preview, with decoded statuses, before anything is
saved, and saves all rows or none. Importing needs the add and change
permissions, exporting the view permission. Working rows, and finished or
canceled rows sent back to the queue, are refused unless the operator ticks
"Allow working rows" or "Allow finished and canceled rows to run again" on
the import form.

Needs django-import-export ('import_export' in INSTALLED_APPS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import apps
from django.contrib import messages
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .resources import MISSING_IMPORT_EXPORT, queue_resource

try:
    from import_export.admin import ImportExportMixin
    from import_export.forms import ConfirmImportForm, ImportForm
except ImportError as error:  # raised by .resources already, unless only a part is missing
    raise ImportError(MISSING_IMPORT_EXPORT, name=error.name) from error

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from .resources import QueueResource

ALLOW_WORKING_HELP = _(
    'Unless this is ticked, a working status in the file is refused (no worker'
    ' would hold the row, so it would look stalled), and so is any change to a'
    ' row a worker holds now.'
)
ALLOW_RERUN_HELP = _(
    'Unless this is ticked, a status that sends a finished or canceled row back'
    ' to created or waiting is refused: the row would run again.'
)

#: The opt-ins of an import, carried from the import form to the confirmation.
OPT_INS = ('allow_working', 'allow_rerun')


class QueueImportForm(ImportForm):
    """django-import-export's import form, with the opt-ins of queue rows."""

    allow_working = forms.BooleanField(
        label=_('Allow working rows'), required=False, help_text=ALLOW_WORKING_HELP
    )
    allow_rerun = forms.BooleanField(
        label=_('Allow finished and canceled rows to run again'),
        required=False,
        help_text=ALLOW_RERUN_HELP,
    )


class QueueConfirmImportForm(ConfirmImportForm):
    """The confirmation form, carrying the opt-ins to the import."""

    allow_working = forms.BooleanField(required=False, widget=forms.HiddenInput)
    allow_rerun = forms.BooleanField(required=False, widget=forms.HiddenInput)


class QueueImportExportMixin(ImportExportMixin):
    """Admin mixin: import and export buttons, queue fields decoded.

    ``queue_fields`` names the queue fields of the model (``['status']``
    by default, like ``QueueAdminMixin``, with which it is shared). Without
    ``resource_classes`` the mixin makes a `modelqueue.import_export.resources.QueueResource`
    for them; give ``resource_classes`` (QueueResource subclasses) to choose
    fields or options yourself.
    """

    queue_fields: list[str] | tuple[str, ...] = ['status']
    import_form_class = QueueImportForm
    confirm_form_class = QueueConfirmImportForm

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Django's admin checks, and that import_export's templates are installed."""
        errors = super().check(**kwargs)
        if not apps.is_installed('import_export'):
            errors.append(
                checks.Error(
                    f"{type(self).__name__} needs 'import_export' in"
                    ' INSTALLED_APPS for its import and export pages',
                    hint="Add 'import_export' to INSTALLED_APPS.",
                    obj=type(self),
                    id='modelqueue.E101',
                )
            )
        return errors

    def get_resource_classes(self, request: HttpRequest) -> list[type[Any]]:
        if self.resource_classes or self.resource_class:
            return super().get_resource_classes(request)
        return [self.queue_resource_class]

    @cached_property
    def queue_resource_class(self) -> type[QueueResource]:
        """The QueueResource made for ``queue_fields``."""
        if not self.queue_fields:
            raise ImproperlyConfigured(
                f'{type(self).__name__}: name the queue fields, for example'
                " queue_fields = ['status'], or give resource_classes"
            )
        return queue_resource(self.model, *self.queue_fields)

    def has_import_permission(self, request: HttpRequest) -> bool:
        """Importing creates and changes rows: it needs both permissions."""
        return (
            self.has_add_permission(request)
            and self.has_change_permission(request)
            and super().has_import_permission(request)
        )

    def has_export_permission(self, request: HttpRequest) -> bool:
        """Exporting shows rows: it needs the view (or change) permission."""
        return self.has_view_permission(request) and super().has_export_permission(
            request
        )

    def get_import_resource_kwargs(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        resource_kwargs = super().get_import_resource_kwargs(request, **kwargs)
        cleaned = getattr(kwargs.get('form'), 'cleaned_data', {})
        for name in OPT_INS:
            if cleaned.get(name):
                resource_kwargs[name] = True
        return resource_kwargs

    def get_confirm_form_initial(
        self, request: HttpRequest, import_form: forms.Form | None
    ) -> dict[str, Any]:
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            for name in OPT_INS:
                initial[name] = import_form.cleaned_data.get(name)
        return initial

    def process_import(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """Confirm an import; a second confirmation gets a message, not a 500."""
        try:
            return super().process_import(request, **kwargs)
        except FileNotFoundError:  # the preview's file was imported or removed
            messages.error(
                request,
                _(
                    'Nothing was imported: the file to import is gone (it was'
                    ' imported already, or removed). Upload it again.'
                ),
            )
            return self._redirect_to('import')

    def process_result(self, result: Any, request: HttpRequest) -> HttpResponse:
        """After confirmation: report rows that failed now, when nothing was saved.

        The preview showed no errors, but the rows are checked again when they
        are saved (the database may have changed meanwhile).
        """
        if not (result.has_errors() or result.has_validation_errors()):
            return super().process_result(result, request)
        problems = [
            message
            for row in result.invalid_rows
            for field_messages in row.error_dict.values()
            for message in field_messages
        ]
        problems += [
            f'row {number}: {error.error}'
            for number, errors in result.row_errors()
            for error in errors
        ]
        problems += [str(error.error) for error in result.base_errors]
        messages.error(
            request,
            _('Nothing was imported: %(problems)s')
            % {'problems': '; '.join(problems)},
        )
        return self._redirect_to('changelist')

    def _redirect_to(self, page: str) -> HttpResponseRedirect:
        opts = self.opts
        return HttpResponseRedirect(
            reverse(
                f'admin:{opts.app_label}_{opts.model_name}_{page}',
                current_app=self.admin_site.name,
            )
        )
