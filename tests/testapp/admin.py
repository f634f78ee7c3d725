from django.contrib import admin

import modelqueue
from modelqueue.admin import QueueAdminMixin

from .models import Task, Upload


@admin.register(Task)
class TaskAdmin(QueueAdminMixin, admin.ModelAdmin):
    list_display = ['id', 'data', 'note']
    list_filter = [modelqueue.admin_list_filter('status')]
    search_fields = ['data']
    actions = [*modelqueue.admin_actions('status')]


@admin.register(Upload)
class UploadAdmin(QueueAdminMixin, admin.ModelAdmin):
    queue_fields = ['scan_status', 'publish_status']
    list_display = ['id', 'name']
