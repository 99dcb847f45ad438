"""The operator page in a real browser: the OS's chromium, headless, driven by selenium, against `battplc demo`.

Screenshots of each page go to build/screenshots/ (README shows the overview).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runtime.site import REPO_ROOT

if TYPE_CHECKING:
    from conftest import Demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("the browser tests need chromium and chromedriver (apt install chromium chromium-driver; "
                ".ci/run installs them)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SHOTS = REPO_ROOT / "build" / "screenshots"
WAIT = 30  # s: generous on a loaded 2-core machine; a wait ends as soon as its condition holds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER or ""))
    try:
        yield driver
    finally:
        driver.quit()


def text(browser: WebDriver, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def until(browser: WebDriver, condition, message: str) -> object:  # type: ignore[no-untyped-def]
    return WebDriverWait(browser, WAIT, poll_frequency=0.2).until(lambda b: condition(b), message)


def shot(browser: WebDriver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def open_page(browser: WebDriver, demo: Demo, page: str) -> None:
    browser.get(f"{demo.url}#{page}")
    until(browser, lambda b: text(b, "#link") == "live", "the page never went live")


def tag_value(browser: WebDriver, name: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, f'#tag-table tr[data-name="{name}"] td:nth-child(2)') \
        .get_attribute("textContent") or ""


def test_overview_loads_and_values_change(browser: WebDriver, demo: Demo) -> None:
    open_page(browser, demo, "overview")
    until(browser, lambda b: text(b, "#soc-text").startswith("SoC ") and "-" not in text(b, "#soc-text"),
          "no SoC shown")
    until(browser, lambda b: text(b, "#flow-battery") not in ("", "-"), "no battery power in the flow")
    first = tag_value(browser, "scan.count")
    until(browser, lambda b: tag_value(b, "scan.count") not in ("", first), "scan.count did not move")
    voltage = float(tag_value(browser, "bat.voltage"))
    assert 20 < voltage < 30  # the 8S pack, from the plant through the drivers and the page
    assert text(browser, "#mode") == "auto"
    shot(browser, "overview")
    for page in ("tags", "charts", "trends"):
        browser.get(f"{demo.url}#{page}")
        until(browser, lambda b: text(b, "#link") == "live", f"{page}: not live")
        if page == "charts":
            until(browser, lambda b: b.execute_script(
                "return [...document.querySelectorAll('.chart img')].every(i => i.complete && i.naturalWidth > 0)"),
                "chart drawings did not load")
        if page == "trends":
            until(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".trend svg")) >= 5, "no trends drawn")
        shot(browser, page)


def test_filter_keeps_matching_tags(browser: WebDriver, demo: Demo) -> None:
    open_page(browser, demo, "tags")
    field = browser.find_element(By.ID, "filter")
    field.clear()
    field.send_keys("cell_v_charge")
    visible = [row.get_attribute("data-name") for row in browser.find_elements(By.CSS_SELECTOR, "#tag-table tbody tr")
               if row.is_displayed()]
    # Name, unit and description are searched: alarm.cell_high's description names par.cell_v_charge_max.
    assert visible == ["alarm.cell_high", "par.cell_v_charge_max", "par.cell_v_charge_resume"]


def test_acknowledge_an_alarm(browser: WebDriver, demo: Demo) -> None:
    # The demo raises input_bad at start until the devices first answer: it returns unacknowledged.
    open_page(browser, demo, "alarms")
    browser.find_element(By.ID, "token").send_keys(demo.token)
    row = 'tr[data-alarm="input_bad"]'
    until(browser, lambda b: text(b, f"{row} td:nth-child(2)") in ("returned-unacknowledged", "active-unacknowledged"),
          "input_bad is not waiting for an acknowledge")
    assert text(browser, "#alarm-count") != "0"
    browser.find_element(By.CSS_SELECTOR, f"{row} button").click()  # acknowledge
    until(browser, lambda b: text(b, f"{row} td:nth-child(2)") in ("normal", "active-acknowledged"),
          "the acknowledge did not change the state")
    until(browser, lambda b: "operator" in text(b, "#journal"), "the journal has no operator entry")
    assert "done" in text(browser, "#notice")
    shot(browser, "alarms")


def parameter_row(browser: WebDriver, demo: Demo, name: str) -> str:
    """The parameters view opened with the operator's token typed in; the CSS selector of ``name``'s row."""
    open_page(browser, demo, "parameters")
    token = browser.find_element(By.ID, "token")
    token.clear()
    token.send_keys(demo.token)
    return f'#param-table tr[data-name="{name}"]'


def test_out_of_range_parameter_is_refused_with_its_reason(browser: WebDriver, demo: Demo) -> None:
    row = parameter_row(browser, demo, "par.cell_v_charge_max")
    before = text(browser, f"{row} td:nth-child(2)")
    field = browser.find_element(By.CSS_SELECTOR, f"{row} input")
    field.send_keys("9")
    browser.find_element(By.CSS_SELECTOR, f"{row} button").click()
    until(browser, lambda b: b.find_element(By.ID, "notice").is_displayed() and "Refused" in text(b, "#notice"),
          "no refusal shown")
    assert "outside" in text(browser, "#notice")  # the Modbus path's reason, with the range
    shot(browser, "parameters-refused")
    # Two more live messages later the value is what it was: the refused write changed nothing.
    clock = text(browser, "#clock")
    until(browser, lambda b: text(b, "#clock") != clock, "no live message after the refusal")
    clock = text(browser, "#clock")
    until(browser, lambda b: text(b, "#clock") != clock, "no second live message after the refusal")
    assert text(browser, f"{row} td:nth-child(2)") == before == "3.65"


def test_a_parameter_in_range_is_written(browser: WebDriver, demo: Demo) -> None:
    row = parameter_row(browser, demo, "par.fan_on_temp")
    field = browser.find_element(By.CSS_SELECTOR, f"{row} input")
    field.clear()
    field.send_keys("36.5")
    browser.find_element(By.CSS_SELECTOR, f"{row} button").click()
    until(browser, lambda b: text(b, f"{row} td:nth-child(2)") == "36.5", "the write did not land")


def test_without_the_token_a_write_is_refused(browser: WebDriver, demo: Demo) -> None:
    open_page(browser, demo, "overview")
    browser.execute_script("sessionStorage.clear()")
    browser.find_element(By.ID, "token").clear()
    browser.find_element(By.CSS_SELECTOR, '#mode-buttons button[data-mode="hold"]').click()
    until(browser, lambda b: "wrong or missing write token" in text(b, "#notice"), "no refusal shown")
    assert text(browser, "#mode") == "auto"


def test_a_lost_connection_shows_stale(browser: WebDriver, demo: Demo) -> None:
    open_page(browser, demo, "overview")
    # Cut the page's stream from inside (the server stays up): the page must say so, then reconnect by itself.
    browser.execute_script("source.close()")
    until(browser, lambda b: text(b, "#link").startswith("stale"), "a dead stream was not shown as stale")
    assert "stale" in (browser.find_element(By.TAG_NAME, "body").get_attribute("class") or "")
    shot(browser, "stale")
    until(browser, lambda b: text(b, "#link") == "live", "the page did not reconnect")
