"""The month a city is handed: October 2026 of ba-dinh, from the stores to JSON, CSV and a spreadsheet
opened with their own readers (csv, openpyxl) — the totals match, the days are Hà Nội's, the headings
in the reader's language, availability and repair times from the alerts of the month."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from controller.alerts.store import AlertRow
from drivers.base import Reading
from tests.api.keys import api_client
from tests.conftest import free_port
from tests.controller.city import running_controller, settings_for

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
OCT1 = dt.datetime(2026, 10, 1, tzinfo=HANOI)


def at(day: int, hour: float) -> dt.datetime:
    return (dt.datetime(2026, 10, day, tzinfo=HANOI) + dt.timedelta(hours=hour)).astimezone(dt.UTC)


def alert(device: str, kind: str, raised: dt.datetime, cleared: dt.datetime | None) -> AlertRow:
    return AlertRow(
        device_id=device,
        kind=kind,
        severity="major",
        site_id="hn",
        group_path="hanoi/ba-dinh/kim-ma",
        raised_at=raised,
        evidence="test",
        cleared_at=cleared,
    )


async def test_a_month_of_a_group_in_json_csv_and_a_spreadsheet(tmp_path: Path) -> None:
    hotspot = f"""
[[links]]
id = "city-broker"
site = "hn"
kind = "mqtt"
host = "127.0.0.1"
port = {free_port()}

[[devices]]
id = "ap-kimma"
link = "city-broker"
key = "ap-kimma"
profile = "wifi_ap"
group = "hanoi/ba-dinh/kim-ma"
latitude = 21.03
longitude = 105.82
"""
    settings = settings_for(tmp_path, gw_lamps=2, bus_lamps=1, interval=60.0, extra=hotspot)
    async with running_controller(settings) as ctl:
        hours = int((dt.datetime(2026, 11, 1, tzinfo=HANOI) - OCT1).total_seconds() // 3600) + 1
        readings = [
            Reading(
                device,
                (OCT1 + dt.timedelta(hours=h)).astimezone(dt.UTC),
                {"energy_wh": 10_000 + daily_wh * h / 24, "burning_hours_h": 500 + 12 * h / 24},
            )
            for device, daily_wh in (("gw1-001", 650.0), ("gw1-002", 325.0))
            for h in range(hours)
        ]
        await ctl.store.write(readings)
        await ctl.store.write(  # the street's hotspot: 12 clients at 200 kbit/s all month
            [
                Reading(
                    "ap-kimma",
                    (OCT1 + dt.timedelta(hours=h)).astimezone(dt.UTC),
                    {"clients": 12, "rx_kbps": 50.0, "tx_kbps": 150.0},
                )
                for h in range(hours - 1)
            ]
        )
        async with ctl.alert_store.session() as s, s.begin():
            s.add_all(
                [
                    alert("gw1-001", "lampFailure", at(10, 0), at(11, 0)),  # 24 h dark
                    alert("gw1-002", "communicationFailure", at(20, 12), at(20, 18)),  # 6 h …
                    alert("gw1-002", "relayFault", at(20, 15), at(20, 21)),  # … overlapping: 9 h dark
                    alert("gw1-001", "dayBurning", at(1, 0) - dt.timedelta(days=3), None),  # not darkening
                ]
            )
        async with api_client(ctl, "viewer") as api:
            params = {"group": "hanoi/ba-dinh", "month": "2026-10"}
            body = (await api.get("/api/v1/monthly-report", params=params)).json()
            csv_rsp = await api.get(
                "/api/v1/monthly-report", params={**params, "format": "csv", "lang": "en"}
            )
            xlsx_rsp = await api.get(
                "/api/v1/monthly-report", params={**params, "format": "xlsx", "lang": "vi"}
            )
            bad = await api.get("/api/v1/monthly-report", params={**params, "month": "2026-13"})
            future = await api.get("/api/v1/monthly-report", params={**params, "month": "2099-01"})
            nowhere = await api.get("/api/v1/monthly-report", params={**params, "group": "nowhere"})

    assert (body["lamps"], body["source"], body["timezone"]) == (2, "lamps", "Asia/Ho_Chi_Minh")
    assert len(body["days"]) == 31
    assert body["days"][0]["day"] == "2026-10-01"  # Hà Nội's days, not UTC's
    assert body["days"][0]["kwh"] == pytest.approx(0.975 * 23 / 24, abs=0.002)
    assert body["kwh"] == pytest.approx(sum(d["kwh"] for d in body["days"]), abs=0.01)
    assert body["burning_hours"] == pytest.approx(31 * 2 * 12 * 23 / 24, abs=0.5)
    assert body["availability_pct"] == pytest.approx(100 * (1 - 33 / (31 * 24 * 2)), abs=0.001)
    assert body["faults_raised"] == 3  # the day-burning alert was raised in September
    faults = {f["kind"]: (f["raised"], f["cleared"], f["mttr_hours"]) for f in body["faults"]}
    assert faults == {
        "lampFailure": (1, 1, 24.0),
        "communicationFailure": (1, 1, 6.0),
        "relayFault": (1, 1, 6.0),
    }
    assert body["mttr_hours"] == pytest.approx(12.0)
    wifi = body["wifi"]
    assert (wifi["access_points"], wifi["peak_clients"], wifi["mean_clients"]) == (1, 12, 12.0)
    assert wifi["data_mb"] == pytest.approx((hours - 1) * 200 * 3600 / 8 / 1000)
    assert wifi["availability_pct"] == 100.0

    assert csv_rsp.status_code == 200
    assert csv_rsp.headers["content-type"].startswith("text/csv")
    assert 'filename="lamplighter-hanoi_ba-dinh-2026-10.csv"' in csv_rsp.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(csv_rsp.content.decode("utf-8-sig"))))
    assert rows[0] == ["Day", "Energy (kWh)", "Full-power baseline (kWh)", "Saving (%)", "Burning hours (h)"]
    assert rows[1][0] == "2026-10-01"
    assert rows[-1][0] == "Month"
    assert float(rows[-1][1]) == pytest.approx(body["kwh"])
    assert sum(float(r[1]) for r in rows[1:-1]) == pytest.approx(body["kwh"], abs=0.01)

    book = openpyxl.load_workbook(io.BytesIO(xlsx_rsp.content))
    assert book.sheetnames == ["Tổng hợp", "Theo ngày", "Sự cố", "Wi-Fi công cộng"]
    hotspots = {row[0]: row[1] for row in book["Wi-Fi công cộng"].iter_rows(values_only=True)}
    assert hotspots["Số người dùng cao nhất trên một điểm phát"] == 12
    assert hotspots["Nơi đông người dùng nhất"] == "ap-kimma"
    summary = {row[0]: row[1] for row in book["Tổng hợp"].iter_rows(values_only=True)}
    assert summary["Điện năng (kWh)"] == pytest.approx(body["kwh"])
    assert summary["Nguồn số liệu điện năng"] == "đồng hồ đo của từng đèn"
    assert summary["Tỷ lệ sẵn sàng (%)"] == pytest.approx(body["availability_pct"])
    days = list(book["Theo ngày"].iter_rows(values_only=True))
    assert days[0][0] == "Ngày"
    assert len(days) == 1 + 31 + 1
    assert days[-1][1] == pytest.approx(body["kwh"])
    fault_rows = list(book["Sự cố"].iter_rows(values_only=True))
    assert fault_rows[0] == ("Sự cố", "Phát sinh", "Đã khắc phục", "Thời gian khắc phục trung bình (h)")
    assert {r[0]: r[3] for r in fault_rows[1:]} == {
        "Đèn không sáng": 24.0,  # the kinds in words, in the reader's language
        "Mất liên lạc": 6.0,
        "Lỗi rơ-le": 6.0,
    }

    assert bad.status_code == 400
    assert "YYYY-MM" in bad.json()["error"]["message"]
    assert future.status_code == 400
    assert "has not begun" in future.json()["error"]["message"]
    assert nowhere.status_code == 404
