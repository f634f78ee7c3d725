"""The demo's admin: every queue model gets the queue admin in one line."""

from django.contrib import admin

from modelqueue.admin import QueueAdminMixin

from .models import Email, Image

try:  # import and export buttons, when django-import-export is installed
    from modelqueue.import_export.admin import QueueImportExportMixin
except ImportError:
    QUEUE_ADMIN_BASES = (QueueAdminMixin, admin.ModelAdmin)
else:
    QUEUE_ADMIN_BASES = (QueueImportExportMixin, QueueAdminMixin, admin.ModelAdmin)


@admin.register(Email)
class EmailAdmin(*QUEUE_ADMIN_BASES):
    queue_fields = ['status']
    list_display = ['subject', 'recipient', 'sent_at']
    search_fields = ['subject', 'recipient']


@admin.register(Image)
class ImageAdmin(*QUEUE_ADMIN_BASES):
    queue_fields = ['resize_status', 'publish_status']
    list_display = ['name', 'width', 'height', 'thumbnail', 'published_at']
    search_fields = ['name']
