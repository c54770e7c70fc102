"""The dashboard in real headless Chromium (Debian's), driven by Playwright: log in, see the map and
the figures, acknowledge an alert, edit an override. Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from api.app import create_app
from api.server import ApiServer
from controller.runtime import Controller
from controller.service import ControllerService
from simulators.city import SimulatedCity
from simulators.lamp import Fault
from tests.api.keys import auth_headers
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import until

CHROMIUM = os.environ.get("LAMPLIGHTER_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARTIFACTS = Path(os.environ.get("LAMPLIGHTER_ARTIFACTS", "test-artifacts")) / "dashboard"
PASSWORD = "night-shift-2026"
Env = tuple[Controller, SimulatedCity, str]
NIGHTLY = {
    "id": "nightly",
    "steps": [
        {"event": "sunset", "level": 100},
        {"at": "23:00", "level": 60},
        {"event": "sunrise", "level": 0},
    ],
}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = settings_for(tmp_path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        await until(lambda: all(st.last_seen for st in ctl.fleet.devices.values()), what="first polls")
        assert ctl.scheduling is not None
        await ctl.scheduling.put("program", "nightly", NIGHTLY)
        await ctl.scheduling.put("calendar", "city", {"id": "city", "default_program": "nightly"})
        await ctl.scheduling.put("group_calendar", "hanoi", {"calendar": "city"})
        await ctl.auth.create_user("linh", "engineer", PASSWORD)
        await ctl.auth.create_user("ioc", "viewer", PASSWORD)
        try:
            yield ctl, city, server.url
        finally:
            await server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert HAVE_CHROMIUM, f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium"
    async with async_playwright() as pw:  # never `playwright install`: Debian's Chromium, no downloads
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",  # the tests run as root in CI
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def log_in(browser: Browser, url: str, user: str, width: int = 1920, height: int = 1080) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height}, timezone_id="Asia/Ho_Chi_Minh")
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))  # a script smuggled into data would open one
    page.on("pageerror", lambda e: dialogs.append(f"page error: {e}"))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    await page.goto(url + "/")
    await page.fill("#login-user", user)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#app")).to_be_visible()
    return page


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_an_engineer_logs_in_sees_the_city_acknowledges_and_edits_an_override(
    env: Env, browser: Browser
) -> None:
    ctl, city, url = env
    city.segments.find("gw1", 2).faults.add(Fault.VOLTAGE_SAG)
    await until(lambda: ctl.alerts is not None and len(ctl.alerts.book.active) == 1, what="an alert")

    wrong = await browser.new_page()
    await wrong.goto(url + "/")
    await wrong.fill("#login-user", "linh")
    await wrong.fill("#login-password", "not-the-password")
    await wrong.click("#login-form button[type=submit]")
    await expect(wrong.locator("#login-error")).to_have_text("wrong user or password")
    await wrong.close()

    page = await log_in(browser, url, "linh")
    await expect(page.locator("#who")).to_have_text("linh (engineer)")
    # The map: one dot per device, coloured by state; the faulty lamp has an alert ring.
    await expect(page.locator("#map circle[data-device]")).to_have_count(len(ctl.devices))
    await expect(page.locator("#map .alert-ring")).to_have_count(1)
    await expect(page.locator("#kpi-lamps .value")).to_have_text(str(len(ctl.devices)))
    await expect(page.locator("#kpi-faults .value")).to_have_text("1")
    # The schedule curve with sunrise and sunset marked.
    await expect(page.locator("#schedule-chart path.line")).to_have_count(1)
    await expect(page.locator("#schedule-chart line[data-sun=sunset]")).to_have_count(1)
    await expect(page.locator("#schedule-chart line[data-sun=sunrise]")).to_have_count(1)
    await shot(page, "1-map-and-alert-1920x1080")

    # Device detail: click the faulty lamp on the map.
    await page.click("#map circle[data-device=gw1-002]", force=True)
    await expect(page.locator("#device-title")).to_contain_text("gw1-002")
    await expect(page.locator("#device-chart path.line")).to_have_count(1)

    # Acknowledge the alert.
    alert = page.locator("#alerts li[data-alert]")
    await expect(alert).to_have_count(1)
    await expect(alert).to_contain_text("supplyVoltageTooLow · gw1-002")
    await alert.get_by_role("button", name="Acknowledge").click()
    await expect(alert).to_contain_text("ack user:linh")
    headers = await auth_headers(ctl, "viewer")
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        (stored,) = (await client.get("/api/v1/alerts", params={"state": "open"})).json()["items"]
    assert stored["state"] == "acknowledged"
    assert stored["acknowledged_by"] == "user:linh"

    # Create an override whose reason is markup, then edit its level.
    hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    await page.fill("#ov-id", "night-market")
    await page.fill("#ov-group", "hanoi")
    await page.fill("#ov-level", "80")
    await page.fill("#ov-hours", "3")
    await page.fill("#ov-reason", hostile)
    await page.click("#override-form button[type=submit]")
    row = page.locator("#overrides li[data-override=night-market]")
    await expect(row).to_contain_text("at 80 %")
    await expect(row.locator(".reason")).to_have_text(hostile)  # shown as text, not run
    await row.get_by_role("button", name="Edit").click()
    await page.fill("#ov-level", "30")
    await page.click("#override-form button[type=submit]")
    await expect(row).to_contain_text("at 30 %")
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        overrides = (await client.get("/api/v1/overrides")).json()
    assert [(o["id"], o["level"], o["reason"]) for o in overrides] == [("night-market", 30, hostile)]
    await shot(page, "2-override-edited-1920x1080")
    assert page.dialogs == []  # type: ignore[attr-defined]

    laptop = await log_in(browser, url, "linh", 1366, 768)
    await expect(laptop.locator("#map circle[data-device]")).to_have_count(len(ctl.devices))
    await shot(laptop, "3-laptop-1366x768")


async def test_a_viewer_sees_everything_but_cannot_act(env: Env, browser: Browser) -> None:
    ctl, city, url = env
    city.segments.find("bus1", 1).faults.add(Fault.VOLTAGE_SURGE)
    await until(lambda: ctl.alerts is not None and len(ctl.alerts.book.active) == 1, what="an alert")
    page = await log_in(browser, url, "ioc")
    await expect(page.locator("#alerts li[data-alert]")).to_have_count(1)
    await expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    await expect(page.locator("#override-form")).to_be_hidden()
    await shot(page, "4-viewer")

    # Log out: the token is gone and the page asks for a login again.
    await page.click("#logout")
    await expect(page.locator("#login")).to_be_visible()
    token: Any = await page.evaluate("sessionStorage.getItem('lamplighter.token')")
    assert token is None
