# Issue 24: the heartbeat lists every row its worker holds, with the working status of each claim, so that the rows of a lost worker can be rescued.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('modelqueue', '0004_queuedtask_unique_key'),
    ]

    operations = [
        migrations.AddField(
            model_name='workerheartbeat',
            name='held',
            field=models.JSONField(blank=True, default=list, verbose_name='rows in hand'),
        ),
    ]
