"""Template names of the queue admin's pages, model-specific first.

As with Django's ``delete_selected_confirmation_template``, a page's template
is the one a model admin declares, or the first found of::

    modelqueue/<app_label>/<model_name>/<page>.html
    modelqueue/<app_label>/<page>.html
    modelqueue/<page>.html

>>> from django.contrib.auth.models import User
>>> template_names(User._meta, None, 'dashboard')
['modelqueue/auth/user/dashboard.html', 'modelqueue/auth/dashboard.html', 'modelqueue/dashboard.html']
>>> template_names(User._meta, 'mine.html', 'dashboard')
['mine.html']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.models.options import Options


def template_names(opts: Options[Any], declared: str | Sequence[str] | None, page: str) -> list[str]:
    """The templates to try for `page` of the model `opts`, `declared` alone if given."""
    if declared:
        return [declared] if isinstance(declared, str) else list(declared)
    return [
        f'modelqueue/{opts.app_label}/{opts.model_name}/{page}.html',
        f'modelqueue/{opts.app_label}/{page}.html',
        f'modelqueue/{page}.html',
    ]
