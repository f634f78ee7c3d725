"""The browser fixture itself: Chromium logs in to the admin of the live server."""

import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import log_in

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_login_to_admin_index(browser):
    log_in(browser)
    assert browser.find_element(By.ID, 'site-name').text == 'Django administration'
    assert 'Tasks' in browser.find_element(By.ID, 'content-main').text
