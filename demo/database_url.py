"""Read a database URL such as ``postgres://user:password@host:5432/name``.

The demo uses SQLite unless ``DATABASE_URL`` names a PostgreSQL or MariaDB
(MySQL) server, so one setting moves it to a database that workers on many
machines share.

>>> config = parse('postgres://postgres@127.0.0.1:5432/modelqueue_demo')
>>> config['ENGINE'], config['HOST'], config['PORT'], config['NAME']
('django.db.backends.postgresql', '127.0.0.1', '5432', 'modelqueue_demo')
"""

from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

ENGINES = {
    'postgres': 'django.db.backends.postgresql',
    'postgresql': 'django.db.backends.postgresql',
    'mysql': 'django.db.backends.mysql',
    'mariadb': 'django.db.backends.mysql',
}


def _without_password(url):
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(':' + parts.password + '@', ':***@', 1)
    return parts._replace(netloc=netloc).geturl()


def parse(url):
    """Return Django's DATABASES entry for `url`.

    >>> parse('mysql://root:s%40cret@db.internal/queue')['PASSWORD']
    's@cret'
    >>> parse('redis://localhost/0')  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    django.core.exceptions.ImproperlyConfigured: invalid DATABASE_URL 'redis://localhost/0':
    expected a URL starting with postgres://, postgresql://, mysql:// or mariadb://
    """
    shown = _without_password(url)
    parts = urlsplit(url)
    if parts.scheme not in ENGINES:
        raise ImproperlyConfigured(
            f'invalid DATABASE_URL {shown!r}: expected a URL starting with'
            ' postgres://, postgresql://, mysql:// or mariadb://'
        )
    name = unquote(parts.path.lstrip('/'))
    if not name or '/' in name:
        raise ImproperlyConfigured(
            f'invalid DATABASE_URL {shown!r}: expected a database name after'
            ' the host, as in postgres://postgres@127.0.0.1:5432/modelqueue_demo'
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(
            f'invalid DATABASE_URL {shown!r}: expected a port number from 1'
            ' through 65535 after the host'
        ) from None
    config = {
        'ENGINE': ENGINES[parts.scheme],
        'NAME': name,
        'USER': unquote(parts.username or ''),
        'PASSWORD': unquote(parts.password or ''),
        'HOST': parts.hostname or '',
        'PORT': str(port or ''),
    }
    if config['ENGINE'] == 'django.db.backends.mysql':
        config['OPTIONS'] = {'charset': 'utf8mb4'}
    return config
