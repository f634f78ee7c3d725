"""The change form of a queue row: save what the operator changed, nothing more.

A worker may finish a row while an operator has its change form open. Django
would save every field of the form, so the worker's result would be erased
and the row sent back to the state the form showed. Here:

- the form carries a signed copy of the row as it was when the form opened
  (`OPENED`, rendered by ``modelqueue/change_form.html``);
- a field counts as changed by the operator when its new value differs from
  that copy, and only those fields are written, with one UPDATE;
- a field the operator changed that also changed in the row meanwhile (the
  status, most of all) is a form error, and the row is kept as it is;
- the UPDATE happens only while those fields still hold the values the form
  opened with; if a worker wrote one of them in between, nothing is saved
  (`RowChangedMeanwhile`) and the operator is told.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import router
from django.forms.models import construct_instance
from django.utils.translation import gettext as _

from ..queue import save_fields_fenced

if TYPE_CHECKING:
    from django.db.models import Model
    from django.forms import ModelForm

#: The name of the hidden input that carries the row as the form opened.
OPENED = '_modelqueue_opened'
SALT = 'modelqueue.admin.changeform'


class RowChangedMeanwhile(Exception):
    """The row changed between the form's check and its save: nothing was saved."""


def row_values(obj: Model) -> dict[str, str]:
    """The values of `obj`'s concrete fields as text, by attname (not the key)."""
    return {
        field.attname: field.value_to_string(obj)
        for field in obj._meta.concrete_fields
        if not field.primary_key
    }


def opened_token(obj: Model) -> str:
    """The signed copy of `obj` that the change form carries."""
    return signing.dumps(row_values(obj), salt=SALT, compress=True)


def fenced_form(form_class: type[ModelForm[Any]]) -> type[ModelForm[Any]]:
    """Return `form_class` checking and recording what the operator changed."""

    class FencedForm(form_class):  # type: ignore[misc, valid-type]  # the model admin's form
        def clean(self) -> dict[str, Any] | None:
            cleaned = super().clean()
            model = self._meta.model
            # Where the row is written: a replica may be behind.
            current = model._base_manager.using(router.db_for_write(model)).filter(
                pk=self.instance.pk
            ).first()
            if current is None:
                return cleaned
            opened = self._opened(current)
            candidate = construct_instance(self, copy.copy(current))
            new = row_values(candidate)
            now = row_values(current)
            names = {
                field.attname: field
                for field in model._meta.concrete_fields
                if field.name in self.fields
            }
            edited = [name for name in names if new[name] != opened.get(name)]
            moved = [name for name in edited if now[name] != opened.get(name)]
            if moved:
                raise ValidationError(
                    _(
                        'Nothing was saved: %(fields)s changed since you opened this'
                        ' form (a worker may have run the row). Reload the page to'
                        ' see the row as it is now.'
                    )
                    % {
                        'fields': ', '.join(
                            f'{names[name].verbose_name} (now {now[name]})' for name in moved
                        )
                    },
                    code='changed_meanwhile',
                )
            self.modelqueue_opened = {name: opened.get(name) for name in edited}
            return cleaned

        def _opened(self, current: Model) -> dict[str, Any]:
            token = self.data.get(OPENED)
            if not token:  # not posted by our change form: compare with the row now
                return row_values(current)
            try:
                return signing.loads(token, salt=SALT)
            except signing.BadSignature:
                raise ValidationError(
                    _('The form could not be checked against the row; reload the page.'),
                    code='bad_token',
                ) from None

    FencedForm.__name__ = FencedForm.__qualname__ = form_class.__name__
    return FencedForm


def save_edited(obj: Model, form: Any) -> None:
    """Write the fields the operator changed, while they hold what the form opened with.

    :raises RowChangedMeanwhile: when one of them changed in between
    """
    edited = form.modelqueue_opened
    if not edited:
        return
    fields = {field.attname: field for field in obj._meta.concrete_fields}
    fence = {
        name: None if value is None else fields[name].to_python(value)
        for name, value in edited.items()
    }
    if not save_fields_fenced(obj, edited, fence):
        raise RowChangedMeanwhile(
            _(
                'Nothing was saved: %(object)s changed while it was being saved (a'
                ' worker may have run it). Here it is as it is now.'
            )
            % {'object': obj}
        )
