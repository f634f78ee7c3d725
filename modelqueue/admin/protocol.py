"""What the admin's helper modules ask of a queue model admin, as a typing protocol.

:class:`~modelqueue.admin.options.QueueAdminMixin` implements it. The system
checks, the changelist's counts and the dashboard's worker figures take the
model admin as a :class:`QueueModelAdmin`, not as the mixin, so imports go
one way: ``options`` imports them, never the reverse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.contrib.admin.views.main import ChangeList
    from django.db.models import Model, QuerySet
    from django.forms import Media
    from django.http import HttpRequest

__all__ = ['QueueModelAdmin']


class QueueModelAdmin(Protocol):
    """A ModelAdmin with the queue options of QueueAdminMixin."""

    @property
    def model(self) -> type[Model]: ...

    @property
    def admin_site(self) -> AdminSite: ...

    @property
    def queue_fields(self) -> Sequence[str]:
        """The status fields to operate, as declared (the checks test them)."""

    @property
    def queue_timeout(self) -> dt.timedelta:
        """How long a row may stay working before it counts as stalled."""

    @property
    def queue_estimate_above(self) -> int | None:
        """Counts of at least this many rows may be estimated; None: never."""

    @property
    def valid_queue_fields(self) -> list[str]:
        """The queue fields that are status fields of the model."""

    def queue_estimate_for(self, request: HttpRequest) -> int | None:
        """`queue_estimate_above` where the page may estimate, else None."""

    def queue_url(self, page: str, *args: Any) -> str:
        """The URL of this model admin's `page`."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]: ...

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool: ...

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool: ...

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList: ...

    @property
    def media(self) -> Media: ...

    def message_user(
        self, request: HttpRequest, message: str, level: int = ..., extra_tags: str = ..., fail_silently: bool = ...
    ) -> None: ...
