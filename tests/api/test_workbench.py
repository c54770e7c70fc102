"""The lighting engineer's workbench in real headless Chromium: an engineer adds a 23:00 step at 40 %
to a program, sees the draft's curve and what changes tonight, is told why a bad step would be
refused (the API's words), saves with a reason, and the group's lamps are at 40 % — commanded through
the one command path, confirmed by the simulators; then undoes it from the history. A viewer sees
no workbench. The month's report downloads as a spreadsheet and prints.

"A chosen time": the site's zone is chosen so that it is 23:xx there now, so the new step is the one
in force and the lamps must follow at once (catch-up after every change)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from playwright.async_api import Browser, Route, expect

from api.app import create_app
from api.server import ApiServer
from controller.config import load_config
from controller.runtime import Controller
from controller.service import ControllerService
from simulators.city import SimulatedCity
from tests.api.test_dashboard import browser, log_in, shot  # noqa: F401 - `browser` is a fixture
from tests.controller.city import running_city, running_controller, write_city
from tests.waiting import until

PASSWORD = "night-shift-2026"
EVENING = {"id": "evening", "name": "Evening", "steps": [{"at": "12:00", "level": 30}]}
FESTIVE = {"id": "festive", "name": "Festive", "steps": [{"at": "12:00", "level": 70}]}
Env = tuple[Controller, SimulatedCity, str]


def zone_where_it_is_23h(now: dt.datetime) -> str:
    """An IANA fixed-offset zone in which the hour is 23 now (Etc/GMT-7 is UTC+7)."""
    offset = (23 - now.astimezone(dt.UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    path = write_city(tmp_path)
    zone = zone_where_it_is_23h(dt.datetime.now(dt.UTC))
    path.write_text(path.read_text().replace('id = "hn"\n', f'id = "hn"\ntimezone = "{zone}"\n', 1))
    settings = load_config(path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        assert ctl.scheduling is not None
        await ctl.scheduling.put("program", "evening", EVENING)
        await ctl.scheduling.put("program", "festive", FESTIVE)
        await ctl.scheduling.put("calendar", "city", {"id": "city", "default_program": "evening"})
        await ctl.scheduling.put("group_calendar", "hanoi", {"calendar": "city"})  # both streets
        await ctl.auth.create_user("linh", "engineer", PASSWORD)
        await ctl.auth.create_user("ioc", "viewer", PASSWORD)
        try:
            yield ctl, city, server.url
        finally:
            await server.stop()


async def test_an_engineer_changes_tonight_sees_it_first_saves_and_undoes(env: Env, browser: Browser) -> None:  # noqa: F811
    ctl, city, url = env
    lamps = [city.segments.find("gw1", u) for u in range(1, 7)]
    await until(lambda: all(lamp.level_cmd == 30 for lamp in lamps), within_s=10, what="the program's 30 %")
    page = await log_in(browser, url, "linh")
    await page.select_option("#language", "en")
    await page.select_option("#group-select", "hanoi/ba-dinh/kim-ma")
    bench = page.locator("#workbench")
    await expect(bench).to_be_visible()
    await expect(page.locator("#prog-select")).to_have_value("evening")
    await expect(page.locator("#prog-steps tr")).to_have_count(1)

    await page.click("#prog-add")  # a new step, at 23:00 by default
    await expect(page.locator("#prog-steps tr")).to_have_count(2)
    await expect(page.locator("#prog-steps tr[data-step='1'] input[type=time]")).to_have_value("23:00")
    await page.fill("#prog-steps tr[data-step='1'] input[data-k=level]", "140")
    await expect(page.locator("#prog-error")).to_contain_text("less than or equal to 100")  # the API's words
    await expect(page.locator("#prog-save")).to_be_disabled()
    await page.fill("#prog-steps tr[data-step='1'] input[data-k=level]", "40")
    await expect(page.locator("#prog-error")).to_have_text("")
    await expect(page.locator("#prog-changes li").first).to_contain_text("6 lamps in hanoi/ba-dinh/kim-ma:")
    await expect(page.locator("#prog-changes li").first).to_contain_text("30 % → 40 %")
    await expect(page.locator("#prog-energy")).to_contain_text("kWh")
    await expect(page.locator("#prog-chart path.line")).to_have_count(1)
    assert all(lamp.level_cmd == 30 for lamp in lamps)  # a draft changes nothing
    await shot(page, "8-engineer-workbench-draft")

    await page.fill("#prog-reason", "night market on Kim Mã: brighter after 23:00")
    # a busy server: the history and its comparisons answer slowly, and what the engineer opens in
    # the history still shows (it vanished when a save drew the history twice, one under the click)
    slow_history = re.compile(r"/api/v1/schedule-history(/compare)?\?")

    async def slowly(route: Route) -> None:
        await asyncio.sleep(3.0 if "/compare?" in route.request.url else 2.0)
        await route.continue_()

    await page.route(slow_history, slowly)
    await page.click("#prog-save")
    # said once the program is open again, its history (2 s here) read
    await expect(page.locator("#prog-result")).to_contain_text("Program evening saved", timeout=15_000)
    await until(lambda: all(lamp.level_cmd == 40 for lamp in lamps), within_s=10, what="40 % after saving")
    history = page.locator("#prog-history > li")
    await expect(history).to_have_count(2)
    await expect(history.first).to_contain_text("night market on Kim Mã")
    await expect(history.first).to_contain_text("linh")
    await history.first.get_by_role("button", name="What changed").click()
    await expect(history.first.locator("ul.diff")).to_contain_text("steps[1]: —")  # the new step
    await page.unroute(slow_history, slowly)
    await history.nth(1).get_by_role("button", name="Restore").click()
    await expect(page.locator("#prog-result")).to_contain_text("version 1 restored")
    await until(lambda: all(lamp.level_cmd == 30 for lamp in lamps), within_s=10, what="30 % again")
    await expect(page.locator("#prog-steps tr")).to_have_count(1)
    await expect(history).to_have_count(3)

    # a calendar rule: every weekday is festive (a week's preview says which nights change)
    await expect(page.locator("#calendars")).to_be_visible()
    await expect(page.locator("#cal-select")).to_have_value("city")
    await page.click("#cal-add")
    rule = page.locator("#cal-rules tr[data-rule='0']")
    await rule.locator("select[data-k=kind]").select_option("weekdays")
    for day in ("mon", "tue", "wed", "thu", "fri"):
        await rule.locator(f"input[data-k='day:{day}']").check()
    await rule.locator("select[data-k=program]").select_option("festive")
    await expect(page.locator("#cal-changes li").first).to_contain_text("30 % → 70 %")
    await page.fill("#cal-reason", "Tết week")
    await page.click("#cal-save")
    await expect(page.locator("#cal-result")).to_contain_text("Calendar city saved")
    await until(
        lambda: all(lamp.level_cmd == 70 for lamp in lamps), within_s=10, what="70 % on festive nights"
    )

    # an override for one lamp, starting tomorrow at 20:00 on the site's clock (the browser is elsewhere)
    assert ctl.scheduling is not None
    zone = ZoneInfo(ctl.settings.sites[0].timezone)
    tomorrow = (dt.datetime.now(zone) + dt.timedelta(days=1)).date()
    await page.fill("#ov-id", "tet-eve")
    await page.fill("#ov-device", "gw1-003")
    await page.fill("#ov-start", f"{tomorrow.isoformat()}T20:00")
    await page.fill("#ov-level", "90")
    await page.fill("#ov-hours", "2")
    await page.click("#override-form button[type=submit]")
    await expect(page.locator("#overrides li[data-override=tet-eve]")).to_be_visible()
    planned = ctl.scheduling.overrides["tet-eve"]
    assert planned.device_id == "gw1-003"
    assert planned.start == dt.datetime.combine(tomorrow, dt.time(20, 0), zone)
    assert lamps[2].level_cmd == 70  # not yet

    # tonight's dimming for one street only: its own program and calendar, made from the others
    street = [city.segments.find("bus1", u) for u in range(1, 4)]  # hang-dao, on the same calendar
    await until(lambda: all(lamp.level_cmd == 70 for lamp in street), within_s=10, what="hang-dao festive")
    await page.select_option("#prog-select", "festive")
    await page.fill("#prog-steps tr[data-step='0'] input[data-k=level]", "20")
    await page.fill("#prog-copy-id", "kim-ma-late")
    await page.click("#prog-copy")
    await expect(page.locator("#prog-result")).to_contain_text("Program kim-ma-late saved")
    await expect(page.locator("#prog-select")).to_have_value("kim-ma-late")  # the copy is open
    await expect(page.locator("#prog-history > li")).to_have_count(1)
    await page.locator("#cal-rules tr[data-rule='0']").get_by_role("button", name="Remove").click()
    await page.select_option("#cal-default", "kim-ma-late")
    await page.fill("#cal-copy-id", "kim-ma")
    # the list of calendars answers slowly: "saved" is said once the copy is open, so giving it to
    # the street at once gives the copy (it gave the calendar open before when said earlier)
    calendar_list = re.compile(r"/api/v1/calendars$")
    await page.route(calendar_list, slowly)
    await page.click("#cal-copy")
    await expect(page.locator("#cal-result")).to_contain_text("Calendar kim-ma saved", timeout=15_000)
    await page.click("#cal-assign")
    await page.unroute(calendar_list, slowly)
    await expect(page.locator("#cal-select")).to_have_value("kim-ma")  # the copy is open
    await expect(page.locator("#cal-result")).to_contain_text(
        "hanoi/ba-dinh/kim-ma now follows calendar kim-ma"
    )
    await until(lambda: all(lamp.level_cmd == 20 for lamp in lamps), within_s=10, what="kim-ma at 20 %")
    assert all(lamp.level_cmd == 70 for lamp in street)  # hang-dao untouched
    assert ctl.scheduling.programs["festive"].steps[0].level == 70  # the original kept

    async with page.expect_download() as downloaded:
        await page.click("#report-xlsx")
    saved = await (await downloaded.value).path()
    book = openpyxl.load_workbook(io.BytesIO(await asyncio.to_thread(Path(saved).read_bytes)))
    assert book.sheetnames == ["Summary", "Days", "Faults"]
    async with page.expect_popup() as opened:  # a new tab of the same session (sessionStorage is copied)
        await page.click("#report-print")
    report = await opened.value
    await expect(report.locator("body[data-ready=yes]")).to_be_attached()
    await expect(report.locator("#summary")).to_contain_text("hanoi/ba-dinh/kim-ma")
    await expect(report.locator("#days tbody tr").last).to_contain_text("Month")
    await shot(report, "9-monthly-report")
    assert page.problems == []  # type: ignore[attr-defined]

    viewer = await log_in(browser, url, "ioc")
    await expect(viewer.locator("#workbench")).to_be_hidden()
    await expect(viewer.locator("#reports")).to_be_visible()
