"""The admin history of what an operator's queue operation changed.

Every operation leaves a ``LogEntry``, as Django's own change form does: one
per row, saying what the row was before, when it changed at most
`ROWS_LOGGED_ONE_BY_ONE` rows, and otherwise one entry for the whole
operation (no object, so it shows among the site's recent actions), so that
requeueing a million rows does not write a million history rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.text import capfirst
from django.utils.translation import gettext as _

from ..validation import concrete_field

if TYPE_CHECKING:
    from typing import Protocol

    from django.db.models import Model
    from django.http import HttpRequest
    from django.utils.functional import _StrOrPromise

    from ..status import Status

    class Operation(Protocol):
        """What the history reads of an operation (``operations.Operation``,
        whose module imports this one)."""

        @property
        def verb(self) -> _StrOrPromise: ...

        @property
        def logged(self) -> _StrOrPromise | None: ...


#: Up to this many changed rows, each gets an entry of its own.
ROWS_LOGGED_ONE_BY_ONE = 500


def log_operation(
    request: HttpRequest,
    model: type[Model],
    field: str,
    operation: Operation,
    rows: list[tuple[Model, Status]] | None,
    summary: str,
) -> None:
    """Write the history of `operation` on `field`.

    `rows` is a list of (object, previous status) for each changed row, or
    None when more rows changed than are logged one by one; `summary` is the
    message the operator was shown.
    """
    # Models: imported here, since the admin app's config imports this package.
    from django.contrib.admin.models import CHANGE, LogEntry  # noqa: PLC0415 (needs the app registry)
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (needs the app registry)

    content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
    user_id: Any = request.user.pk  # a staff user's: never None
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
    label = str(concrete_field(model, field).verbose_name)
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
