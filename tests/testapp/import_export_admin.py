"""The import/export admin on its own site, mounted at /ie-admin/ by tests.urls."""

from django.contrib import admin

import modelqueue
from modelqueue.admin import QueueAdminMixin, QueueAdminSite
from modelqueue.import_export.admin import QueueImportExportMixin

from .models import Task, Upload

site = QueueAdminSite(name='ie_admin')


@admin.register(Task, site=site)
class TaskAdmin(QueueImportExportMixin, admin.ModelAdmin):
    """Import/export alone on a plain ModelAdmin."""

    list_display = ['id', 'data', 'status']
    list_filter = [modelqueue.admin_list_filter('status')]


@admin.register(Upload, site=site)
class UploadAdmin(QueueImportExportMixin, QueueAdminMixin, admin.ModelAdmin):
    """Import/export combined with the queue admin, two queue fields."""

    queue_fields = ['scan_status', 'publish_status']
    list_filter = [
        modelqueue.admin_list_filter('scan_status'),
        modelqueue.admin_list_filter('publish_status'),
    ]
