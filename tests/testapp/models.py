import uuid

from django.db import models

import modelqueue


class Task(models.Model):
    """The reference's example model, with a column actions and operators edit."""

    data = models.TextField()
    note = models.CharField(max_length=200, blank=True, default='')
    status = modelqueue.StatusField(db_index=True, default=modelqueue.Status.waiting)

    def __str__(self):
        return self.data


class Execution(models.Model):
    """One row per run of an action, written by tests to count executions."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE)
    pid = models.IntegerField()

    def __str__(self):
        return f'{self.task_id} in {self.pid}'


class Upload(models.Model):
    """A model with two queues: scan then publish."""

    name = models.CharField(max_length=200)
    scan_status = modelqueue.StatusField(
        db_index=True, default=modelqueue.Status.waiting
    )
    publish_status = modelqueue.StatusField(
        db_index=True, default=modelqueue.Status.created
    )

    def __str__(self):
        return self.name


class Label(str):
    """A string that knows the database vendor and the column it was read from."""

    vendor = column = None


class LabelField(models.CharField):
    """A custom field whose ``from_db_value`` reads its expression and connection,
    as custom fields may: every load of a row must pass both, as a query does."""

    def from_db_value(self, value, expression, connection):
        label = Label(value)
        label.vendor = connection.vendor
        label.column = expression.target.column
        return label


class Recipient(models.Model):
    """Whom a delivery goes to: a queue's queryset may filter through it."""

    address = models.CharField(max_length=200)

    def __str__(self):
        return self.address


class Delivery(models.Model):
    """A queue whose columns the database hands back in other types than the
    model's (booleans, decimals, JSON, datetimes, UUIDs on some databases), so
    that a row loaded by the claim can be compared with one loaded by a query."""

    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE)
    urgent = models.BooleanField(default=False)
    amount = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    payload = models.JSONField(default=dict)
    token = models.UUIDField(default=uuid.uuid4)
    label = LabelField(max_length=50, default='')
    note = models.CharField(max_length=200, blank=True, default='')
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)
    status = modelqueue.StatusField(db_index=True, default=modelqueue.Status.waiting)

    def __str__(self):
        return f'delivery to {self.recipient_id}'


class Unmigrated(models.Model):
    """A queue whose table was never created (not managed): a worker started
    on it must say what is missing."""

    status = modelqueue.StatusField(db_index=True, default=modelqueue.Status.waiting)

    class Meta:
        managed = False
        db_table = 'testapp_never_created'

    def __str__(self):
        return f'unmigrated {self.pk}'
