"""The demo's admin: every queue model gets the queue admin in one line."""

from django.contrib import admin

from modelqueue.admin import QueueAdminMixin

from .models import Email, Image

try:  # import and export buttons when django-import-export is installed
    from modelqueue.import_export_admin import QueueImportExportMixin
except ImportError:
    QueueImportExportMixin = None

if QueueImportExportMixin is None:
    QueueModelAdmin = type('QueueModelAdmin', (QueueAdminMixin, admin.ModelAdmin), {})
else:
    QueueModelAdmin = type(
        'QueueModelAdmin',
        (QueueImportExportMixin, QueueAdminMixin, admin.ModelAdmin),
        {},
    )


@admin.register(Email)
class EmailAdmin(QueueModelAdmin):
    queue_fields = ['status']
    list_display = ['subject', 'recipient', 'sent_at']
    search_fields = ['subject', 'recipient']


@admin.register(Image)
class ImageAdmin(QueueModelAdmin):
    queue_fields = ['resize_status', 'publish_status']
    list_display = ['name', 'width', 'height', 'thumbnail', 'published_at']
    search_fields = ['name']
