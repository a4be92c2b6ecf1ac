"""The water dashboard in headless Chromium: it loads, live values change, the leak's alert appears.

Debian's chromium + chromedriver, driven by Selenium.  The deployment is
real (nats-server, CAS, `sereca run` processes); the gateway starts only
once the page is connected, so readings and the alert reach the page live
over the bus bridge.  A screenshot is kept in test-output/dashboard.png
and in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sereca.apps.water.demo import DemoOptions, WaterDemo, default_scenario
from sereca.apps.water.network import load_network

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
NEAR_M = 500.0
SPEED = 14400.0  # 4 simulated hours per second: the leak (at 25 h) alerts ~7 s after the replay starts


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


async def _until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` (run in a thread: Selenium blocks) until it returns something truthy."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def test_dashboard_shows_live_values_and_the_leak_alert(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    demo = WaterDemo(DemoOptions(scenario=default_scenario(), speed=SPEED,
                                 services=("leak-detector", "alerting", "dashboard")))
    await asyncio.wait_for(demo.start(), 120)
    try:
        assert demo.dashboard_url and demo.scenario
        leak = demo.scenario.leaks[0]

        def text(css: str) -> str:
            # Read in one script call: the page re-renders its tables on every update, so an element
            # found by one WebDriver call can be stale by the next (StaleElementReferenceException).
            return str(browser.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css))

        await asyncio.to_thread(browser.get, demo.dashboard_url)
        await _until(lambda: text("#conn") == "bus: connected", "the bus bridge to connect")
        await _until(lambda: browser.find_elements(By.CSS_SELECTOR, "#map .scatterlayer path"), "the network map")
        assert browser.find_element(By.ID, "sim-banner").is_displayed()
        assert "SIMULATION" in text("#sim-banner")
        assert text("#tee") == "TEE: sim (SIMULATED)"
        assert text("#network-name") == "L-Town"
        assert text("#reading-count") == "0"

        await demo.launch("sensor-gateway")  # the replay starts now, into a connected page

        sensor = "pressure.n1"
        cell = f'#sensors tr[data-sensor="{sensor}"] td:nth-child(2)'
        first = await _until(lambda: (v := text(cell)) not in ("", "-") and v, "a live value")
        await _until(lambda: text(cell) not in ("", "-", first), f"{sensor} to change from {first}")
        assert int(text("#reading-count")) > 0

        # The table and its count in one script call: a second alert may arrive between two calls.
        rows, count = await _until(
            lambda: (page := browser.execute_script(
                "return [[...document.querySelectorAll('#alerts tbody tr')].map(r => [r.dataset.pipe, r.innerText]),"
                " document.querySelector('#alert-count').innerText];")) and page[0] and page,
            "an alert on the page", timeout=45)
        distance = load_network(demo.scenario.network).pipe_distance_fn([leak.pipe])
        near = [(pipe, row) for pipe, row in rows if pipe and distance(leak.pipe, pipe) <= NEAR_M]
        assert near, f"no alert near the leak on {leak.pipe}: {rows}"
        assert int(count) == len(rows)
        # the alert is placed on the map too (the alerts trace has a marker)
        assert browser.execute_script("return document.getElementById('map').data[2].x.length") >= 1

        await asyncio.sleep(0.5)  # let plotly finish drawing before the picture
        shot = tmp_path / "dashboard.png"
        assert await asyncio.to_thread(browser.save_screenshot, str(shot))
        OUTPUT.mkdir(exist_ok=True)
        shutil.copy(shot, OUTPUT / "dashboard.png")
    finally:
        await asyncio.wait_for(demo.stop(), 60)
