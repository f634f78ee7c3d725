# How an idle worker is woken, on its heartbeat row: the admin's Workers panel shows it.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('modelqueue', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='workerheartbeat',
            name='wakeup',
            field=models.CharField(blank=True, default='', max_length=20, verbose_name='wake-up'),
        ),
    ]
