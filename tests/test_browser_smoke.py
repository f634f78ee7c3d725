"""The browser fixture itself: Chromium logs in to the admin of the live server."""

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.common.by import By


@pytest.mark.django_db(transaction=True)
def test_login_to_admin_index(browser):
    User.objects.create_superuser('admin', 'admin@example.com', 'secret-password')
    browser.login('admin', 'secret-password')
    assert browser.find_element(By.ID, 'site-name').text == 'Django administration'
    assert 'Tasks' in browser.find_element(By.ID, 'content-main').text
