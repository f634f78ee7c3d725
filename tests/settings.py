"""Settings of the test project.

The database comes from MODELQUEUE_DB: sqlite (the default), postgresql or
mariadb. Test databases are named after this checkout, so two checkouts on
one machine never share one. MODELQUEUE_DB_NAME points a child process (a
worker started by a test) at the test database its parent created.
"""

import copy
import hashlib
import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
CHECKOUT_TAG = hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]

DEBUG = False
SECRET_KEY = 'modelqueue-tests-only'
ALLOWED_HOSTS = ['*']
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
    'tests.testapp',
]

try:  # optional: the import/export feature and its tests need it
    import import_export  # noqa: F401
except ImportError:
    pass
else:
    INSTALLED_APPS.append('import_export')

MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
    'django.middleware.clickjacking.XFrameOptionsMiddleware',
]

ROOT_URLCONF = 'tests.urls'
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

DATABASE_VENDOR = os.environ.get('MODELQUEUE_DB', 'sqlite')
TEST_DATABASE_NAME = f'test_modelqueue_{CHECKOUT_TAG}'

if DATABASE_VENDOR == 'sqlite':
    default = {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': BASE_DIR / '.test-db.sqlite3',
        # A file, not memory: worker processes started by tests share it.
        # One per test run, so two runs in one checkout never share it.
        'TEST': {'NAME': str(BASE_DIR / f'.{TEST_DATABASE_NAME}_{os.getpid()}.sqlite3')},
        'OPTIONS': {
            # The settings the guide recommends for several workers (docs/guide.rst).
            'init_command': 'PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;',
            'transaction_mode': 'IMMEDIATE',
            'timeout': 20,
        },
    }
elif DATABASE_VENDOR == 'postgresql':
    default = {
        'ENGINE': 'django.db.backends.postgresql',
        'NAME': 'postgres',
        'USER': os.environ.get('MODELQUEUE_PG_USER', 'postgres'),
        'HOST': os.environ.get('MODELQUEUE_PG_HOST', '127.0.0.1'),
        'PORT': os.environ.get('MODELQUEUE_PG_PORT', '5432'),
        'TEST': {'NAME': TEST_DATABASE_NAME},
    }
elif DATABASE_VENDOR == 'mariadb':
    default = {
        'ENGINE': 'django.db.backends.mysql',
        'NAME': 'test',
        'USER': os.environ.get('MODELQUEUE_MARIADB_USER', 'root'),
        'PASSWORD': os.environ.get('MODELQUEUE_MARIADB_PASSWORD', ''),
        'HOST': os.environ.get('MODELQUEUE_MARIADB_HOST', '127.0.0.1'),
        'PORT': os.environ.get('MODELQUEUE_MARIADB_PORT', '3306'),
        'OPTIONS': {'charset': 'utf8mb4'},
        'TEST': {'NAME': TEST_DATABASE_NAME, 'CHARSET': 'utf8mb4'},
    }
else:
    raise ValueError(
        f'invalid MODELQUEUE_DB {DATABASE_VENDOR!r}: expected sqlite, postgresql'
        ' or mariadb'
    )

if os.environ.get('MODELQUEUE_DB_NAME'):
    default['NAME'] = os.environ['MODELQUEUE_DB_NAME']

DATABASES = {'default': default}

# Child processes of the topology tests (PgBouncer, a read-only "replica",
# a direct LISTEN alias) get their databases as a JSON object: each alias a
# copy of the default with the keys given ("default" changes the default
# itself), and a router by its dotted path.
for _alias, _changes in json.loads(os.environ.get('MODELQUEUE_TEST_DATABASES', '{}')).items():
    DATABASES[_alias] = {**(default if _alias == 'default' else copy.deepcopy(default)), **_changes}
if os.environ.get('MODELQUEUE_TEST_ROUTER'):
    DATABASE_ROUTERS = [os.environ['MODELQUEUE_TEST_ROUTER']]

# Worker processes started by tests beat faster than the default 5 seconds.
MODELQUEUE_HEARTBEAT_SECONDS = float(os.environ.get('MODELQUEUE_HEARTBEAT_SECONDS', '5'))

LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'handlers': {'console': {'class': 'logging.StreamHandler'}},
    'loggers': {'modelqueue': {'handlers': ['console'], 'level': 'WARNING'}},
}

# Django's Tasks framework (django.tasks, or the django-tasks backport on
# Django 5.2) on ModelQueue: tests/tasks.
TASKS = {
    'default': {
        'BACKEND': 'modelqueue.tasks.ModelQueueBackend',
        'QUEUES': ['default', 'emails', 'reports'],
    },
    'retrying': {
        'BACKEND': 'modelqueue.tasks.ModelQueueBackend',
        'QUEUES': ['default'],
        'OPTIONS': {'ON_EXCEPTION': 'retry', 'RETRY': 2},
    },
    # A declared retry policy: tests/tasks/test_retries.py.
    'backoff': {
        'BACKEND': 'modelqueue.tasks.ModelQueueBackend',
        'QUEUES': ['default'],
        'OPTIONS': {
            'RETRY': 2,
            'BACKOFF': '100,2,1000,0',
            'RETRY_ON': ['builtins.OSError'],
            'GIVE_UP_ON': ['builtins.FileNotFoundError'],
        },
    },
    # One attempt, whatever a task raises: the fuzz test's (tests/worker/test_fuzz.py).
    'once': {
        'BACKEND': 'modelqueue.tasks.ModelQueueBackend',
        'QUEUES': ['default'],
        'OPTIONS': {'RETRY': 0},
    },
}

# A worker process of the schedules' tests is given its schedules so, as JSON
# with 'every' in seconds (tests/tasks/test_schedules.py).
if os.environ.get('MODELQUEUE_TEST_SCHEDULES'):
    import datetime as _dt

    MODELQUEUE_SCHEDULES = {
        _name: {**_options, 'every': _dt.timedelta(seconds=_options['every'])}
        for _name, _options in json.loads(os.environ['MODELQUEUE_TEST_SCHEDULES']).items()
    }

# A worker process of the topology tests may be told its LISTEN alias so.
if os.environ.get('MODELQUEUE_LISTEN_DATABASE'):
    MODELQUEUE_LISTEN_DATABASE = os.environ['MODELQUEUE_LISTEN_DATABASE']
