# Failure records and worker heartbeats (modelqueue.models).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
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
