"""Two queue models: Email has one queue, Image two (resize, then publish)."""

from django.db import models
from django.utils.translation import gettext_lazy as _

import modelqueue


class Email(models.Model):
    """An email waiting to be sent; the worker "sends" it."""

    recipient = models.EmailField(_('recipient'))
    subject = models.CharField(_('subject'), max_length=200)
    body = models.TextField(_('body'), blank=True)
    sent_at = models.DateTimeField(_('sent at'), null=True, blank=True)
    status = modelqueue.StatusField(
        _('status'), db_index=True, default=modelqueue.Status.waiting
    )

    class Meta:
        verbose_name = _('email')
        verbose_name_plural = _('emails')

    def __str__(self):
        return self.subject


class Image(models.Model):
    """An uploaded image: resized first, and published once resized."""

    name = models.CharField(_('name'), max_length=200)
    width = models.PositiveIntegerField(_('width'))
    height = models.PositiveIntegerField(_('height'))
    thumbnail = models.CharField(_('thumbnail'), max_length=100, blank=True)
    published_at = models.DateTimeField(_('published at'), null=True, blank=True)
    resize_status = modelqueue.StatusField(
        _('resize status'), db_index=True, default=modelqueue.Status.waiting
    )
    # Created (not queued) until the resize action makes it waiting.
    publish_status = modelqueue.StatusField(
        _('publish status'), db_index=True, default=modelqueue.Status.created
    )

    class Meta:
        verbose_name = _('image')
        verbose_name_plural = _('images')

    def __str__(self):
        return self.name
