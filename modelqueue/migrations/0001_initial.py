# The tables of the modelqueue app: the Tasks backend's, failure records and worker heartbeats.

import django.db.models.deletion
from django.db import migrations, models

import modelqueue.status


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.CreateModel(
            name='QueuedTask',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('status', models.BigIntegerField(default=modelqueue.status.Status.waiting, verbose_name='status')),
                ('task_path', models.CharField(db_index=True, max_length=255, verbose_name='task path')),
                ('queue_name', models.CharField(db_index=True, max_length=100, verbose_name='queue name')),
                ('backend_name', models.CharField(max_length=100, verbose_name='backend')),
                ('priority', models.SmallIntegerField(default=0, verbose_name='priority')),
                ('run_after', models.DateTimeField(blank=True, null=True, verbose_name='run after')),
                ('takes_context', models.BooleanField(default=False, verbose_name='takes context')),
                ('args', models.JSONField(blank=True, default=list, verbose_name='arguments')),
                ('kwargs', models.JSONField(blank=True, default=dict, verbose_name='keyword arguments')),
                ('enqueued_at', models.DateTimeField(default=modelqueue.status.now, verbose_name='enqueued at')),
                ('started_at', models.DateTimeField(blank=True, null=True, verbose_name='started at')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
                ('last_attempted_at', models.DateTimeField(blank=True, null=True, verbose_name='last attempted at')),
                ('worker_ids', models.JSONField(blank=True, default=list, verbose_name='worker ids')),
                ('return_value', models.JSONField(blank=True, null=True, verbose_name='return value')),
                ('errors', models.JSONField(blank=True, default=list, verbose_name='errors')),
            ],
            options={
                'verbose_name': 'task',
                'verbose_name_plural': 'tasks',
                'db_table': 'modelqueue_task',
                'indexes': [models.Index(fields=['status', 'id'], name='modelqueue_task_claim')],
            },
        ),
        migrations.CreateModel(
            name='FailureRecord',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('object_id', models.CharField(max_length=255, verbose_name='row')),
                ('field', models.CharField(max_length=100, verbose_name='queue field')),
                ('attempt', models.PositiveSmallIntegerField(verbose_name='attempt')),
                ('outcome', models.CharField(choices=[('waiting', 'will retry'), ('canceled', 'canceled'), ('superseded', 'left as changed meanwhile')], max_length=20, verbose_name='outcome')),
                ('exception', models.CharField(max_length=255, verbose_name='exception')),
                ('message', models.TextField(blank=True, verbose_name='message')),
                ('traceback', models.TextField(blank=True, verbose_name='traceback')),
                ('worker', models.CharField(blank=True, max_length=255, verbose_name='worker')),
                ('started', models.DateTimeField(verbose_name='started')),
                ('ended', models.DateTimeField(db_index=True, verbose_name='ended')),
                ('duration', models.DurationField(verbose_name='duration')),
                ('content_type', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='contenttypes.contenttype', verbose_name='model')),
            ],
            options={
                'verbose_name': 'failure record',
                'verbose_name_plural': 'failure records',
                'indexes': [models.Index(fields=['content_type', 'field', 'object_id', 'id'], name='modelqueue_failure_row'), models.Index(fields=['content_type', 'field', 'ended'], name='modelqueue_failure_recent')],
            },
        ),
        migrations.CreateModel(
            name='WorkerHeartbeat',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('host', models.CharField(max_length=255, verbose_name='host')),
                ('pid', models.PositiveIntegerField(verbose_name='pid')),
                ('field', models.CharField(max_length=100, verbose_name='queue field')),
                ('started', models.DateTimeField(verbose_name='started')),
                ('last_seen', models.DateTimeField(db_index=True, verbose_name='last seen')),
                ('interval', models.FloatField(verbose_name='heartbeat interval (seconds)')),
                ('object_id', models.CharField(blank=True, default='', max_length=255, verbose_name='row in hand')),
                ('held_since', models.DateTimeField(blank=True, null=True, verbose_name='held since')),
                ('tasks_done', models.BigIntegerField(default=0, verbose_name='tasks done')),
                ('failures', models.BigIntegerField(default=0, verbose_name='failures')),
                ('content_type', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='contenttypes.contenttype', verbose_name='model')),
            ],
            options={
                'verbose_name': 'worker heartbeat',
                'verbose_name_plural': 'worker heartbeats',
                'indexes': [models.Index(fields=['content_type', 'field'], name='modelqueue_heartbeat_queue')],
            },
        ),
    ]
