"""Settings of the demo site.

SQLite in demo/db.sqlite3 by default, with the settings the guide
(docs/guide.rst) recommends for several workers; ``DATABASE_URL`` (postgres://... or
mysql://...) moves the site, its workers and their queues to a server.
"""

import datetime
import os
from pathlib import Path

from demo import database_url

BASE_DIR = Path(__file__).resolve().parent

DEBUG = os.environ.get('DEMO_DEBUG', '1') == '1'
# A demo on 127.0.0.1 only: this key protects nothing worth keeping.
SECRET_KEY = os.environ.get('DJANGO_SECRET_KEY', 'modelqueue-demo-not-secret')
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
USE_TZ = True
TIME_ZONE = 'UTC'

INSTALLED_APPS = [
    'modelqueue.admin.apps.QueueAdminConfig',  # admin.site is a QueueAdminSite
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'django.contrib.messages',
    'django.contrib.staticfiles',
    'django.contrib.humanize',
    'modelqueue',
    'demo.jobs',
]

try:  # the optional extra: pip install -e ".[import-export]"
    import import_export  # noqa: F401
except ImportError:
    pass
else:
    INSTALLED_APPS.append('import_export')

# Django's Tasks framework on ModelQueue (demo/jobs/tasks.py); its worker is
# modelqueue_worker --tasks.
TASKS = {
    'default': {
        'BACKEND': 'modelqueue.tasks.ModelQueueBackend',
        'QUEUES': ['default', 'reports'],
    }
}

# Schedules the tasks worker fires (Model queue > Schedules in the admin;
# docs/schedules.rst): a report every 30 seconds, and one each night.
MODELQUEUE_SCHEDULES = {
    'sales-report': {
        'task': 'demo.jobs.tasks.build_report',
        'every': datetime.timedelta(seconds=30),
        'kwargs': {'name': 'sales (scheduled)', 'rows': 200},
    },
    'nightly-audit': {
        'task': 'demo.jobs.tasks.build_report',
        'cron': '0 3 * * *',
        'timezone': 'Europe/Paris',
        'kwargs': {'name': 'nightly audit', 'rows': 5000},
        'missed': 'once',
    },
}

MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
    'django.middleware.clickjacking.XFrameOptionsMiddleware',
]

ROOT_URLCONF = 'demo.urls'
STATIC_URL = '/static/'
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'

TEMPLATES = [
    {
        'BACKEND': 'django.template.backends.django.DjangoTemplates',
        'DIRS': [],
        'APP_DIRS': True,
        'OPTIONS': {
            'context_processors': [
                'django.template.context_processors.request',
                'django.contrib.auth.context_processors.auth',
                'django.contrib.messages.context_processors.messages',
            ],
        },
    },
]

if os.environ.get('DATABASE_URL'):
    DATABASES = {'default': database_url.parse(os.environ['DATABASE_URL'])}
else:
    DATABASES = {
        'default': {
            'ENGINE': 'django.db.backends.sqlite3',
            'NAME': BASE_DIR / 'db.sqlite3',
            # The guide's "SQLite with several workers" settings (docs/guide.rst).
            'OPTIONS': {
                'init_command': 'PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;',
                'transaction_mode': 'IMMEDIATE',
                'timeout': 20,
            },
        }
    }

LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'formatters': {
        'worker': {'format': '%(asctime)s %(name)s %(levelname)s %(message)s'},
    },
    'handlers': {
        'console': {'class': 'logging.StreamHandler', 'formatter': 'worker'},
    },
    'loggers': {
        'modelqueue': {'handlers': ['console'], 'level': 'INFO'},
        'demo': {'handlers': ['console'], 'level': 'INFO'},
    },
}
