"""Tests of the admin: the queue mixin, its actions, dashboard and security, in the test client and in Chromium."""
