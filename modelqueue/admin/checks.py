"""System checks of the queue admin, with stable ids.

====================  ==========================================================
``modelqueue.E001``   ``queue_fields`` is not a non-empty list of field names
``modelqueue.E002``   ``queue_fields`` names a field the model does not have
``modelqueue.E003``   ``queue_fields`` names a field that is not a StatusField
``modelqueue.W001``   a queue admin's site has no queue overview or index links
``modelqueue.E101``   ``QueueImportExportMixin`` without ``import_export``
====================  ==========================================================

``QueueAdminMixin.check()`` runs them, so ``manage.py check`` and the
development server report them like Django's own admin checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core import checks
from django.core.exceptions import FieldDoesNotExist

if TYPE_CHECKING:
    from .protocol import QueueModelAdmin


def check_queue_admin(model_admin: QueueModelAdmin) -> list[checks.CheckMessage]:
    """Return the errors and warnings of `model_admin`'s queue options."""
    return [*check_queue_fields(model_admin), *check_site(model_admin)]


def check_queue_fields(model_admin: QueueModelAdmin) -> list[checks.CheckMessage]:
    name = type(model_admin).__name__
    fields = model_admin.queue_fields
    opts = model_admin.model._meta
    if (
        isinstance(fields, str)
        or not isinstance(fields, (list, tuple))
        or not fields
        or not all(isinstance(field, str) for field in fields)
    ):
        return [
            checks.Error(
                f'{name}.queue_fields is {fields!r}: expected a non-empty list of'
                ' status field names',
                hint="For example queue_fields = ['status'].",
                obj=type(model_admin),
                id='modelqueue.E001',
            )
        ]
    errors: list[checks.CheckMessage] = []
    for field in fields:
        try:
            model_field = opts.get_field(field)
        except FieldDoesNotExist:
            errors.append(
                checks.Error(
                    f"{name}.queue_fields names {field!r}, but {opts.label} has no"
                    ' such field',
                    obj=type(model_admin),
                    id='modelqueue.E002',
                )
            )
            continue
        if model_field.get_internal_type() != 'BigIntegerField':
            errors.append(
                checks.Error(
                    f'{name}.queue_fields names {field!r}, but it is a'
                    f' {type(model_field).__name__}: expected a'
                    ' modelqueue.StatusField (BigIntegerField)',
                    obj=type(model_admin),
                    id='modelqueue.E003',
                )
            )
    return errors


def check_site(model_admin: QueueModelAdmin) -> list[checks.CheckMessage]:
    """W001 unless the admin's site serves the queue overview: a
    :class:`~modelqueue.admin.sites.QueueAdminSiteMixin` says so with
    ``serves_queue_overview`` (read here, so that this module, which
    ``options`` imports, imports neither ``sites`` nor ``options``)."""
    site = model_admin.admin_site
    if getattr(site, 'serves_queue_overview', False):
        return []
    return [
        checks.Warning(
            f'{type(model_admin).__name__} is registered on the admin site'
            f' {site.name!r}, which has no overview of the queues and no links'
            ' to their dashboards on its index page',
            hint=(
                'Use modelqueue.admin.QueueAdminSite (or QueueAdminSiteMixin) for'
                " that site; for the default site, put"
                " 'modelqueue.admin.apps.QueueAdminConfig' in INSTALLED_APPS in"
                " place of 'django.contrib.admin'."
            ),
            obj=type(model_admin),
            id='modelqueue.W001',
        )
    ]
