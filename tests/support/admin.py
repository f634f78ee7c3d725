"""Posting to the queue admin as a changelist page would."""

CHANGELIST = '/admin/testapp/task/'


def post_action(client, action, tasks, url=CHANGELIST, follow=True, **data):
    """POST `action` on the selection `tasks` (models or primary keys)."""
    payload = {
        'action': action,
        '_selected_action': [getattr(task, 'pk', task) for task in tasks],
        'index': 0,
        'select_across': 0,
        **data,
    }
    return client.post(url, payload, follow=follow)


def messages_of(response):
    """The texts of the messages shown on `response`'s page."""
    return [str(message) for message in response.context['messages']]
