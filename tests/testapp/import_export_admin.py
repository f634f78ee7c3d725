"""The import/export admin on its own site, mounted at /ie-admin/ by tests.urls."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import path

import modelqueue
from modelqueue.import_export_admin import QueueImportExportMixin

from .models import Task, Upload

site = admin.AdminSite(name='ie_admin')


@admin.register(Task, site=site)
class TaskAdmin(QueueImportExportMixin, admin.ModelAdmin):
    """Import/export alone on a plain ModelAdmin."""

    queue_fields = ['status']
    list_display = ['id', 'data', 'status']
    list_filter = [modelqueue.admin_list_filter('status')]


class ChangelistToolsMixin:
    """Stands for a queue admin mixin: its own changelist template and page."""

    change_list_template = 'testapp/tools_change_list.html'

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                'tools/',
                self.admin_site.admin_view(self.tools_view),
                name='%s_%s_tools' % info,
            ),
            *super().get_urls(),
        ]

    def tools_view(self, request):
        return HttpResponse('tools')


@admin.register(Upload, site=site)
class UploadAdmin(QueueImportExportMixin, ChangelistToolsMixin, admin.ModelAdmin):
    """Import/export combined with another mixin, two queue fields."""

    queue_fields = ['scan_status', 'publish_status']
    list_filter = [
        modelqueue.admin_list_filter('scan_status'),
        modelqueue.admin_list_filter('publish_status'),
    ]
