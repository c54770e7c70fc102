"""The monthly report as files people open: CSV (the days, then the month's total) and a spreadsheet
(summary, days, faults) — headings in the reader's language, days in the site's calendar."""

from __future__ import annotations

import csv
import io

from controller.monthly_report import MonthlyReport
from controller.words import Language, say

_DAY_COLUMNS = ("day", "kwh", "baseline_kwh", "saving_pct", "burning_hours")


def _heading(lang: Language, column: str) -> str:
    return say(lang, f"report.column.{column}")


def _blank(value: float | None) -> float | str:
    return "" if value is None else value


def day_rows(report: MonthlyReport, lang: Language) -> list[list[object]]:
    """The days table with its heading and a total row (the month's figures)."""
    rows: list[list[object]] = [[_heading(lang, c) for c in _DAY_COLUMNS]]
    for d in report.days:
        rows.append([d.day.isoformat(), d.kwh, d.baseline_kwh, _blank(d.saving_pct), d.burning_hours])
    rows.append(
        [
            say(lang, "report.total"),
            report.kwh,
            report.baseline_kwh,
            _blank(report.saving_pct),
            report.burning_hours,
        ]
    )
    return rows


def to_csv(report: MonthlyReport, lang: Language) -> bytes:
    """UTF-8 with a byte-order mark, so a spreadsheet opened by double-click reads Vietnamese right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(day_rows(report, lang))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def summary_rows(report: MonthlyReport, lang: Language) -> list[tuple[str, object]]:
    source = say(lang, f"report.source.{report.source}")
    return [
        (say(lang, "report.group"), report.group),
        (say(lang, "report.month"), report.month),
        (say(lang, "report.timezone"), report.timezone),
        (say(lang, "report.lamps"), report.lamps),
        (say(lang, "report.source"), source + (f" ({', '.join(report.meters)})" if report.meters else "")),
        (say(lang, "report.column.kwh"), report.kwh),
        (say(lang, "report.column.baseline_kwh"), report.baseline_kwh),
        (say(lang, "report.column.saving_pct"), _blank(report.saving_pct)),
        (say(lang, "report.column.burning_hours"), report.burning_hours),
        (say(lang, "report.availability_pct"), _blank(report.availability_pct)),
        (say(lang, "report.faults_raised"), report.faults_raised),
        (say(lang, "report.mttr_hours"), _blank(report.mttr_hours)),
    ]


def to_xlsx(report: MonthlyReport, lang: Language) -> bytes:
    # imported here: openpyxl costs every start ~50 ms, and only a spreadsheet asked for needs it
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    summary = book.active
    assert summary is not None  # a new workbook has its first sheet
    summary.title = say(lang, "report.sheet.summary")[:31]
    for label, value in summary_rows(report, lang):
        summary.append([label, value])
    summary.column_dimensions["A"].width = 34
    summary.column_dimensions["B"].width = 28
    days = book.create_sheet(say(lang, "report.sheet.days")[:31])
    for row in day_rows(report, lang):
        days.append(row)
    for cell in days[1]:
        cell.font = Font(bold=True)
    for cell in days[days.max_row]:
        cell.font = Font(bold=True)
    faults = book.create_sheet(say(lang, "report.sheet.faults")[:31])
    faults.append([_heading(lang, c) for c in ("kind", "raised", "cleared", "mttr_hours")])
    for f in report.faults:
        faults.append([say(lang, f"kind.{f.kind}"), f.raised, f.cleared, _blank(f.mttr_hours)])
    if report.wifi is not None:
        wifi = book.create_sheet(say(lang, "report.sheet.wifi")[:31])
        w = report.wifi
        for label, value in (
            ("report.wifi.access_points", w.access_points),
            ("report.wifi.peak_clients", _blank(w.peak_clients)),
            ("report.wifi.mean_clients", _blank(w.mean_clients)),
            ("report.wifi.data_mb", w.data_mb),
            ("report.wifi.availability_pct", _blank(w.availability_pct)),
            ("report.wifi.busiest", ", ".join(w.busiest)),
            ("report.wifi.idle", ", ".join(w.idle_in_the_evening) or "—"),
        ):
            wifi.append([say(lang, label), value])
        wifi.column_dimensions["A"].width = 40
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
