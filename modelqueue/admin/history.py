"""The admin history of what an operator's queue operation changed.

Every operation leaves a ``LogEntry``, as Django's own change form does: one
per row, saying what the row was before, when it changed at most
`ROWS_LOGGED_ONE_BY_ONE` rows, and otherwise one entry for the whole
operation (no object, so it shows among the site's recent actions), so that
requeueing a million rows does not write a million history rows.
"""

from django.utils.text import capfirst
from django.utils.translation import gettext as _

#: Up to this many changed rows, each gets an entry of its own.
ROWS_LOGGED_ONE_BY_ONE = 500


def log_operation(request, model, field, operation, rows, summary):
    """Write the history of `operation` on `field`.

    `rows` is a list of (object, previous status) for each changed row, or
    None when more rows changed than are logged one by one; `summary` is the
    message the operator was shown.
    """
    # Models: imported here, since the admin app's config imports this package.
    from django.contrib.admin.models import CHANGE, LogEntry  # noqa: PLC0415 (needs the app registry)
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (needs the app registry)

    content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
    user_id = request.user.pk
    if rows is None:
        LogEntry.objects.create(
            user_id=user_id,
            content_type_id=content_type.pk,
            object_id=None,
            object_repr=capfirst(str(model._meta.verbose_name_plural))[:200],
            action_flag=CHANGE,
            change_message=str(summary),
        )
        return
    label = str(model._meta.get_field(field).verbose_name)
    entry = operation.logged or _('%(operation)s %(field)s, previously %(state)s.')
    LogEntry.objects.bulk_create(
        [
            LogEntry(
                user_id=user_id,
                content_type_id=content_type.pk,
                object_id=str(obj.pk),
                object_repr=str(obj)[:200],
                action_flag=CHANGE,
                change_message=str(entry)
                % {
                    'operation': capfirst(str(operation.verb)),
                    'field': label,
                    'state': previous.state.name,
                },
            )
            for obj, previous in rows
        ]
    )
