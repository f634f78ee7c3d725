"""Tests of the django-import-export integration: resources and the admin mixin."""
