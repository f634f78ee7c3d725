from django.contrib import admin

import modelqueue

from .models import Task, Upload


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ['id', 'data', 'status']
    list_filter = [modelqueue.admin_list_filter('status')]
    actions = [*modelqueue.admin_actions('status')]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ['id', 'name', 'scan_status', 'publish_status']
