"""The night shift's console in real headless Chromium (Debian's), driven by Playwright: a real map
(MapLibre, WebGL through SwiftShader), alert triage, Vietnamese and English, the site's time zone,
keyboard-only work, roles, and /docs with no internet. Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from api.app import create_app
from api.server import ApiServer
from controller.runtime import Controller
from controller.service import ControllerService
from controller.words import LOCALES
from simulators.city import SimulatedCity
from simulators.lamp import Fault
from tests.api.keys import auth_headers
from tests.conftest import free_ports
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import until

CHROMIUM = os.environ.get("LAMPLIGHTER_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARTIFACTS = Path(os.environ.get("LAMPLIGHTER_ARTIFACTS", "test-artifacts")) / "dashboard"
PASSWORD = "night-shift-2026"
SITE_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
Env = tuple[Controller, SimulatedCity, str]
NIGHTLY = {
    "id": "nightly",
    "steps": [
        {"event": "sunset", "level": 100},
        {"at": "23:00", "level": 60},
        {"event": "sunrise", "level": 0},
    ],
}
# one link's devices failing alike within a second of each other make one root-cause alert
QUICK_GROUPS = "[alerts]\ngroup_window_s = 1.0\n"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = settings_for(tmp_path, extra=QUICK_GROUPS)
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
        await ctl.auth.create_user("dem", "operator", PASSWORD)
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
                "--enable-unsafe-swiftshader",  # WebGL in software: the map draws with no GPU
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


async def log_in(
    browser: Browser,
    url: str,
    user: str,
    *,
    width: int = 1920,
    height: int = 1080,
    locale: str = "en-GB",
    zone: str = "Asia/Ho_Chi_Minh",
    query: str = "",
) -> Page:
    page = await browser.new_page(
        viewport={"width": width, "height": height}, locale=locale, timezone_id=zone
    )
    problems: list[str] = []
    page.on("dialog", lambda d: problems.append(d.message))  # a script smuggled into data would open one
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.problems = problems  # type: ignore[attr-defined]
    await page.goto(f"{url}/dashboard/{query}")
    await page.fill("#login-user", user)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#app")).to_be_visible()
    await expect(page.locator("#map[data-ready=yes]")).to_be_attached()
    return page


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def click_device(page: Page, device_id: str) -> None:
    """Click the map where the lamp is drawn (its pixel from the map itself), once the map has
    drawn what it was asked to show (a click on a map still rendering finds nothing)."""
    await page.evaluate(
        "() => new Promise((done) => { const m = window.lamplighter.map;"
        " m.once('idle', () => done(true)); m.triggerRepaint(); })"
    )
    point = await page.evaluate(
        "(id) => { const f = window.lamplighter.devices.byId.get(id);"
        " const p = window.lamplighter.map.project(f.geometry.coordinates);"
        " const r = document.querySelector('#map canvas').getBoundingClientRect();"
        " return [r.left, r.top, p.x, p.y, r.width, r.height]; }",
        device_id,
    )
    left, top, x, y, width, height = point
    assert 0 < x < width, f"{device_id} is not on the map's screen"
    assert 0 < y < height, f"{device_id} is not on the map's screen"
    await page.mouse.click(left + x, top + y)


def english_only_words() -> set[str]:
    """English texts of the translation files that differ from the Vietnamese ones: none may
    show on a page in Vietnamese."""
    en = json.loads((LOCALES / "en.json").read_text(encoding="utf-8"))
    vi = json.loads((LOCALES / "vi.json").read_text(encoding="utf-8"))
    words = set()
    for key, text in en.items():
        plain = re.sub(r"\{\w+\}", "", text).strip(" —:()·,")
        if text != vi[key] and len(plain) >= 4 and not key.startswith(("field.", "group.title")):
            words.add(plain)
    return words


async def test_a_night_operator_reading_vietnamese_finds_a_lamp_triages_a_feeder_trip_dims_a_street(
    env: Env, browser: Browser
) -> None:
    ctl, city, url = env
    assert ctl.alerts is not None
    book = ctl.alerts.book
    # A lamp's supply sags; a minute later (here: seconds) the whole gateway's feeder sags too.
    city.segments.find("gw1", 2).faults.add(Fault.VOLTAGE_SAG)
    await until(lambda: len(book.active) == 1, what="the first alert")
    (first,) = book.active.values()
    later = first.raised_at + dt.timedelta(seconds=1.5)  # past the grouping window
    await until(lambda: dt.datetime.now(dt.UTC) > later, what="the grouping window to pass")
    for unit in (1, 3, 4, 5, 6):
        city.segments.find("gw1", unit).faults.add(Fault.VOLTAGE_SAG)
    await until(lambda: len(book.active) == 6, what="the feeder's alerts")

    page = await log_in(browser, url, "dem", locale="vi-VN", zone="UTC")
    await expect(page.locator("#who")).to_have_text("dem (trực vận hành)")
    # One root-cause entry for the feeder, and the lamp that failed before it, on its own.
    group = page.locator("#alerts li.group")
    await expect(group).to_have_count(1)
    await expect(group).to_contain_text("gw1: điện áp nguồn thấp ở 5 thiết bị")
    single = page.locator("#alerts li[data-alert]")
    await expect(single).to_have_count(1)
    await expect(single).to_contain_text("Điện áp nguồn quá thấp — gw1-002")
    await expect(page.locator("#override-form")).to_be_hidden()  # an operator does not edit schedules

    # Every time in the site's zone (the browser is in UTC), 24 h.
    now = dt.datetime.now(SITE_ZONE)
    shown = await page.locator("#updated").inner_text()
    assert any((now - dt.timedelta(minutes=m)).strftime("%H:%M") in shown for m in (0, 1)), shown
    # No English left on the page.
    text = await page.locator("body").inner_text()
    left = sorted(w for w in english_only_words() if w in text)
    assert not left, f"English on the Vietnamese page: {left}"
    await shot(page, "1-operator-vi-feeder-trip-1920x1080")

    # Keyboard only: tab to the group's acknowledge button; focus stays through a refresh; Enter.
    for _ in range(120):
        await page.keyboard.press("Tab")
        key = await page.evaluate("document.activeElement.dataset.focusKey || ''")
        if key.startswith("ack:group:"):
            break
    else:
        raise AssertionError("the group's acknowledge button is not reachable by Tab")
    before = await page.locator("#updated").inner_text()
    await expect(page.locator("#updated")).not_to_have_text(before, timeout=15_000)  # a refresh went by
    assert await page.evaluate("document.activeElement.dataset.focusKey") == key
    await page.keyboard.press("Enter")
    await expect(group).to_contain_text("đã xác nhận")
    headers = await auth_headers(ctl, "viewer")
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        listed = (await client.get("/api/v1/alerts", params={"grouped": "true"})).json()["items"]
    by_type = {e["type"]: e for e in listed}
    assert by_type["group"]["state"] == "acknowledged"
    assert {m["acknowledged_by"] for m in by_type["group"]["members"]} == {"user:dem"}
    assert by_type["alert"]["state"] == "active"  # the earlier fault is still to be handled

    # A click on the map picks exactly the lamp clicked; the search finds the failed one.
    await click_device(page, "gw1-003")
    await expect(page.locator("#device-title")).to_contain_text("gw1-003")
    await expect(page.locator("#device-values")).to_contain_text("Điện áp nguồn (V)")
    await page.fill("#search", "gw1-002")
    await page.press("#search", "Enter")
    await expect(page.locator("#device-title")).to_contain_text("gw1-002")

    # Dim the street: every lamp of the group, through the command path, confirmed.
    await page.fill("#cmd-level", "40")
    await page.click("#cmd-dim-group")
    await expect(page.locator("#cmd-result")).to_contain_text("6 trên 6 đèn đã xác nhận", timeout=20_000)
    street = [d for d in ctl.devices if d.startswith("gw1-")]
    await until(
        lambda: all(ctl.fleet.devices[d].last_values().get("dim_level_pct") == 40 for d in street),
        what="the street at 40 %",
    )
    await expect(page.locator("#command-history li").first).to_contain_text("mức sáng 40 %")
    await shot(page, "2-operator-vi-dimmed-1920x1080")
    assert page.problems == []  # type: ignore[attr-defined]

    for width, height, name in ((1366, 768, "3-laptop-1366x768"), (390, 844, "4-phone-390")):
        small = await log_in(browser, url, "dem", width=width, height=height, locale="vi-VN")
        await expect(small.locator("#alerts li.group")).to_be_visible()
        await shot(small, name)
        if width < 700:  # a phone puts the alerts first
            alerts_box = await small.locator(".alerts-card").bounding_box()
            map_box = await small.locator(".map-card").bounding_box()
            assert alerts_box is not None
            assert map_box is not None
            assert alerts_box["y"] < map_box["y"]
    wall = await log_in(browser, url, "dem", query="?kiosk", locale="vi-VN")
    await expect(wall.locator("#ack-tools")).to_be_hidden()
    await shot(wall, "5-wall-kiosk-1920x1080")


async def test_an_engineer_in_english_acknowledges_and_edits_an_override(env: Env, browser: Browser) -> None:
    ctl, city, url = env
    city.segments.find("gw1", 2).faults.add(Fault.VOLTAGE_SAG)
    await until(lambda: ctl.alerts is not None and len(ctl.alerts.book.active) == 1, what="an alert")

    wrong = await browser.new_page(locale="en-GB")
    await wrong.goto(url + "/")
    await wrong.fill("#login-user", "linh")
    await wrong.fill("#login-password", "not-the-password")
    await wrong.click("#login-form button[type=submit]")
    await expect(wrong.locator("#login-error")).to_have_text("Wrong user or password")
    await wrong.close()

    page = await log_in(browser, url, "linh")
    await expect(page.locator("#who")).to_have_text("linh (engineer)")
    await expect(page.locator("#kpi-lamps .value")).to_have_text(str(len(ctl.devices)))
    await expect(page.locator("#kpi-faults .value")).to_have_text("1")
    # Availability counts lamps that work: the lamp with a sagging supply still works, 9 of 9.
    await expect(page.locator("#kpi-available")).to_have_attribute("title", re.compile("no open fault"))
    await expect(page.locator("#schedule-chart path.line")).to_have_count(1)
    await expect(page.locator("#schedule-chart line[data-sun=sunset]")).to_have_count(1)

    alert = page.locator("#alerts li[data-alert]")
    await expect(alert).to_contain_text("Supply voltage too low — gw1-002")
    await alert.get_by_role("button", name="Acknowledge").click()
    await expect(alert).to_contain_text("acknowledged by user:linh")

    hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    await page.fill("#ov-id", "night-market")
    await page.select_option("#ov-group", "hanoi/ba-dinh/kim-ma")
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
    headers = await auth_headers(ctl, "viewer")
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        overrides = (await client.get("/api/v1/overrides")).json()
    assert [(o["id"], o["level"], o["reason"]) for o in overrides] == [("night-market", 30, hostile)]

    # The language is the operator's choice, and kept.
    await page.select_option("#language", "vi")
    await expect(page.locator("#alerts li[data-alert]")).to_contain_text("Điện áp nguồn quá thấp")
    await page.reload()
    await expect(page.locator("#language")).to_have_value("vi")
    await shot(page, "6-engineer-override-1920x1080")
    assert page.problems == []  # type: ignore[attr-defined]


async def test_a_viewer_sees_everything_but_cannot_act(env: Env, browser: Browser) -> None:
    ctl, city, url = env
    city.segments.find("bus1", 1).faults.add(Fault.VOLTAGE_SURGE)
    await until(lambda: ctl.alerts is not None and len(ctl.alerts.book.active) == 1, what="an alert")
    page = await log_in(browser, url, "ioc")
    await expect(page.locator("#alerts li[data-alert]")).to_have_count(1)
    await expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    await expect(page.locator("#override-form")).to_be_hidden()
    await click_device(page, "bus1-001")
    await expect(page.locator("#device-title")).to_contain_text("bus1-001")
    await expect(page.locator("#device-commands")).to_be_hidden()
    await shot(page, "7-viewer")

    await page.click("#logout")
    await expect(page.locator("#login")).to_be_visible()
    token: Any = await page.evaluate("sessionStorage.getItem('lamplighter.token')")
    assert token is None


async def test_docs_render_with_no_internet(env: Env, browser: Browser) -> None:
    _, _, url = env
    page = await browser.new_page()
    outside: list[str] = []

    async def only_this_server(route: Any) -> None:
        if route.request.url.startswith(url):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_this_server)
    await page.goto(url + "/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Lamplighter API")
    await expect(page.locator(".opblock-tag-section").first).to_be_visible()
    assert outside == []
    await shot(page, "8-docs-offline")


async def test_a_click_picks_the_lamp_meant_among_10000(tmp_path: Path, browser: Browser) -> None:
    """A city of 10,000 lamps (no simulators: they stay unknown): the map clusters them, and at
    street zoom a click picks the lamp under the pointer, not a neighbour."""
    ports = free_ports(51)  # the last is gw1's: chosen together, so no two links share a port
    ranges = "".join(
        f"""
[[links]]
id = "gw-s{i:02d}"
site = "hn"
kind = "modbus_tcp"
host = "127.0.0.1"
port = {ports[i]}

[[device_ranges]]
id_prefix = "s{i:02d}-"
link = "gw-s{i:02d}"
unit_ids = [1, 200]
profile = "lamp_lcu"
group = "city/district-{i // 10}/street-{i:02d}"
start = [{21.0 + i * 0.002}, 105.80]
end = [{21.0 + i * 0.002}, 105.84]
"""
        for i in range(50)
    )
    settings = settings_for(tmp_path, gw_lamps=1, bus_lamps=1, interval=60.0, extra=ranges, gw_port=ports[50])
    async with running_controller(settings) as ctl:
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        try:
            await ctl.auth.create_user("dem", "operator", PASSWORD)
            assert len(ctl.devices) == 10_002
            page = await log_in(browser, server.url, "dem")
            await expect(page.locator("#kpi-lamps .value")).to_have_text("10002")
            await expect(page.locator(".cluster-label").first).to_be_visible()  # clustered, not a block
            await shot(page, "9-city-10000-clusters")
            await page.fill("#search", "s25-100")
            await page.press("#search", "Enter")
            await expect(page.locator("#device-title")).to_contain_text("s25-100")
            for neighbour in ("s25-101", "s25-099", "s25-102"):
                await click_device(page, neighbour)
                await expect(page.locator("#device-title")).to_contain_text(neighbour)
            await shot(page, "10-city-10000-street-zoom")
        finally:
            await server.stop()
