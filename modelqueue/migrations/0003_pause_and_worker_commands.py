# Issue 24: queue pauses, and the commands an operator gives a worker (quiet, stop) with the permission to give them.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('modelqueue', '0002_workerheartbeat_wakeup'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='workerheartbeat',
            options={'permissions': [('control_worker', 'Can quiet or stop a worker and rescue its rows')], 'verbose_name': 'worker heartbeat', 'verbose_name_plural': 'worker heartbeats'},
        ),
        migrations.AddField(
            model_name='workerheartbeat',
            name='command',
            field=models.CharField(blank=True, choices=[('', 'none'), ('quiet', 'quiet'), ('stop', 'stop')], default='', max_length=10, verbose_name='command'),
        ),
        migrations.AddField(
            model_name='workerheartbeat',
            name='quiet',
            field=models.BooleanField(default=False, verbose_name='quiet'),
        ),
        migrations.CreateModel(
            name='QueuePause',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('field', models.CharField(max_length=100, verbose_name='queue field')),
                ('queue_name', models.CharField(blank=True, default='', max_length=100, verbose_name='queue name')),
                ('paused_at', models.DateTimeField(verbose_name='paused at')),
                ('paused_by', models.CharField(blank=True, default='', max_length=150, verbose_name='paused by')),
                ('content_type', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='contenttypes.contenttype', verbose_name='model')),
            ],
            options={
                'verbose_name': 'queue pause',
                'verbose_name_plural': 'queue pauses',
                'permissions': [('pause_queue', 'Can pause and resume a queue')],
                'default_permissions': ('view',),
                'constraints': [models.UniqueConstraint(fields=('content_type', 'field', 'queue_name'), name='modelqueue_pause_queue')],
            },
        ),
    ]
