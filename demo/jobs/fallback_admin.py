"""A stand-in for modelqueue.admin.QueueAdminMixin until it is on main.

Gives each queue field the 2.2.1 state filter, column and actions. Delete
this module once ``from modelqueue.admin import QueueAdminMixin`` works.
"""

import modelqueue


class QueueAdminMixin:
    queue_fields = ['status']

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        queue_actions = [
            action
            for field in self.queue_fields
            for action in modelqueue.admin_actions(field)
        ]
        self.actions = [*(self.actions or []), *queue_actions]

    def get_list_display(self, request):
        return [*super().get_list_display(request), *self.queue_fields]

    def get_list_filter(self, request):
        filters = [modelqueue.admin_list_filter(field) for field in self.queue_fields]
        return [*filters, *super().get_list_filter(request)]
