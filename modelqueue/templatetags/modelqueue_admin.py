"""Template tags of the operations admin."""

from django import template
from django.contrib.admin.sites import all_sites
from django.urls import reverse

register = template.Library()


@register.simple_tag(takes_context=True)
def modelqueue_queue_links(context):
    """The overview URL and each queue dashboard the user may view, or None.

    Used by the admin index: ``{% modelqueue_queue_links as links %}``.
    """
    from ..admin import QueueAdminMixin  # noqa: PLC0415 (admin imports views)

    request = context.get('request')
    if request is None:
        return None
    name = getattr(request, 'current_app', None) or 'admin'
    site = next((site for site in all_sites if site.name == name), None)
    if site is None:
        return None
    queues = []
    for model_admin in QueueAdminMixin.queue_admins(site):
        if model_admin.has_view_permission(request):
            opts = model_admin.model._meta
            queues.append(
                {
                    'name': opts.verbose_name_plural,
                    'url': reverse(
                        f'admin:{opts.app_label}_{opts.model_name}_dashboard',
                        current_app=site.name,
                    ),
                }
            )
    if not queues:
        return None
    return {
        'overview_url': reverse('admin:modelqueue_overview', current_app=site.name),
        'queues': queues,
    }
