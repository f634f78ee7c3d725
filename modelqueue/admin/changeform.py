"""The change form of a queue row: save what the operator changed, nothing more.

A worker may finish a row while an operator has its change form open. Django
would save every field of the form, so the worker's result would be erased
and the row sent back to the state the form showed. Here:

- the form carries a signed digest of each of its fields' values as they
  were when the form opened (`OPENED`, rendered by
  ``modelqueue/change_form.html``): keyed digests (HMAC with the
  ``SECRET_KEY``) of that row's values, never the values themselves, since
  a signed value is only encoded and anyone who sees the page could read
  it, a field the admin excludes or a view-only user's page included;
- a field counts as changed by the operator when its new value's digest
  differs from the form's, and only those fields are written, with one
  UPDATE;
- a field the operator changed that also changed in the row meanwhile (the
  status, most of all) is a form error, and the row is kept as it is;
- the UPDATE happens only while those fields still hold the values checked
  against the form's digests; if a worker wrote one of them in between,
  nothing is saved (`RowChangedMeanwhile`) and the operator is told.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import router
from django.forms.models import construct_instance
from django.utils.crypto import salted_hmac
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


def row_values(obj: Model) -> dict[str, str | None]:
    """The values of `obj`'s concrete fields as text (None for null), by
    attname (not the key)."""
    return {
        field.attname: None if field.value_from_object(obj) is None else field.value_to_string(obj)
        for field in obj._meta.concrete_fields
        if not field.primary_key
    }


def digest(obj: Model, attname: str, value: str | None) -> str:
    """A keyed digest of `value` (text or None) in the field `attname` of
    `obj`'s row: equal for an equal value of that field of that row, and
    telling nothing of the value to whoever lacks the ``SECRET_KEY``."""
    message = json.dumps([obj._meta.label, str(obj.pk), attname, value])
    return salted_hmac(SALT, message, algorithm='sha256').hexdigest()[:32]


def form_attnames(model: type[Model], form: Any) -> list[str]:
    """The attnames of the concrete fields that `form` edits."""
    return [field.attname for field in model._meta.concrete_fields if field.name in form.fields]


def opened_token(obj: Model, form: Any) -> str | None:
    """The signed digests of the values of `form`'s fields in `obj`, which
    the change form carries; None when the form edits no field (a view-only
    user's form, say)."""
    attnames = form_attnames(type(obj), form)
    if not attnames:
        return None
    values = row_values(obj)
    return signing.dumps({name: digest(obj, name, values[name]) for name in attnames}, salt=SALT)


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
            edited = [name for name in names if digest(current, name, new[name]) != opened.get(name)]
            moved = [name for name in edited if digest(current, name, now[name]) != opened.get(name)]
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
            # The fence of the save: what each edited field held when checked,
            # which is what it held when the form opened.
            self.modelqueue_opened = {name: getattr(current, name) for name in edited}
            return cleaned

        def _opened(self, current: Model) -> dict[str, Any]:
            token = self.data.get(OPENED)
            if not token:  # not posted by our change form: compare with the row now
                values = row_values(current)
                return {name: digest(current, name, value) for name, value in values.items()}
            try:
                opened = signing.loads(token, salt=SALT)
            except signing.BadSignature:
                opened = None
            if not isinstance(opened, dict):
                raise ValidationError(
                    _('The form could not be checked against the row; reload the page.'),
                    code='bad_token',
                )
            return opened

    FencedForm.__name__ = FencedForm.__qualname__ = form_class.__name__
    return FencedForm


def save_edited(obj: Model, form: Any) -> None:
    """Write the fields the operator changed, while they hold what the form was checked against.

    :raises RowChangedMeanwhile: when one of them changed in between
    """
    fence = form.modelqueue_opened
    if not fence:
        return
    if not save_fields_fenced(obj, fence, fence):
        raise RowChangedMeanwhile(
            _(
                'Nothing was saved: %(object)s changed while it was being saved (a'
                ' worker may have run it). Here it is as it is now.'
            )
            % {'object': obj}
        )
