from pathlib import Path

from setuptools import find_packages, setup

setup(
    name='modelqueue',
    version='3.0.0',
    description='Task queue based on Django models, with an operations admin.',
    long_description=Path(__file__).with_name('README.md').read_text(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['modelqueue', 'modelqueue.*']),
    include_package_data=True,
    package_data={
        'modelqueue': [
            'templates/modelqueue/*.html',
            'templates/modelqueue/**/*.html',
            'static/modelqueue/*',
            'static/modelqueue/**/*',
            'locale/*/LC_MESSAGES/*',
        ]
    },
    python_requires='>=3.10',
    install_requires=['Django>=5.2', 'pytz'],
    extras_require={
        'import-export': ['django-import-export[xlsx]>=4,<5'],
        'test': [
            'pytest>=8',
            'pytest-django>=4.9',
            'hypothesis>=6',
            'selenium>=4.20',
            'psycopg[binary]>=3.1',
        ],
        'mariadb': ['mysqlclient>=2.2.1'],
        'postgresql': ['psycopg[binary]>=3.1'],
    },
    classifiers=[
        'Framework :: Django',
        'Framework :: Django :: 5.2',
        'Framework :: Django :: 6.0',
        'Programming Language :: Python :: 3',
    ],
)
