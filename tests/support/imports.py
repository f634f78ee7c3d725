"""Importing a CSV file through the import/export admin (/ie-admin/), as an operator would."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse


def url(name, model='task'):
    return reverse(f'ie_admin:testapp_{model}_{name}')


def format_index(title, model='task', import_=True):
    """The index of file format `title` in the admin's import (or export) form."""
    from tests.testapp import import_export_admin  # noqa: PLC0415 (needs the admin loaded)
    from tests.testapp.models import Task, Upload  # noqa: PLC0415

    model_admin = import_export_admin.site._registry[{'task': Task, 'upload': Upload}[model]]
    formats = model_admin.get_import_formats() if import_ else model_admin.get_export_formats()
    return str([f().get_title() for f in formats].index(title))


def upload(text, name='tasks.csv'):
    return SimpleUploadedFile(name, text.encode(), content_type='text/csv')


def preview(client, text, **extra):
    """Upload `text` as a CSV file; return the preview page."""
    return client.post(
        url('import'), {'import_file': upload(text), 'format': format_index('csv'), **extra}
    )


def confirm(client, response):
    """Confirm the import that the preview page `response` shows."""
    form = response.context['confirm_form']
    data = {name: form.initial.get(name, '') for name in form.fields}
    data = {name: '' if value is None else value for name, value in data.items()}
    return client.post(url('process_import'), data)
