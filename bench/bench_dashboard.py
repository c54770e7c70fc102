"""The dashboard at city scale, in headless Chromium: bytes per idle minute, time to the first map,
and frame times, for the console of issue 17 ("after") and the page it replaced ("before").

    python -m bench.bench_dashboard [--lamps 50000] [--idle-s 60] [--before REV]

The controller (registry, fleet with a reading for every lamp, API on loopback) runs here; polling is
parked (no simulators). While the page idles, 50 lamps change level every 5 s, as a city at dusk
would. "before" serves api/dashboard/ as it was at git revision REV (default: the commit before the
console) beside the current API. Frame times: "after" while the map zooms from the city to a street
and back; "before" across its 5 s refreshes (it has no zoom).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright
from starlette.staticfiles import StaticFiles

from api.app import create_app
from api.server import ApiServer
from bench.common import api_only, write_city
from controller.config import load_config
from controller.runtime import Controller
from controller.service import ControllerService
from drivers.base import Reading

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
logging.basicConfig(level=logging.ERROR)
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "bench-dashboard-2026"
BEFORE_REV = "25ae1a3"  # the last commit with the SVG dashboard
REPO = Path(__file__).resolve().parent.parent


def reading(device_id: str, level: int) -> Reading:
    values: dict[str, Any] = {"dim_level_pct": level, "lamp_on": level > 0, "power_w": level * 1.2}
    return Reading(device_id, dt.datetime.now(dt.UTC), values, {"lamp_failure": False}, 0)


def old_dashboard(rev: str, into: Path) -> Path | None:
    for name in ("index.html", "app.js", "style.css"):
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:api/dashboard/{name}"], capture_output=True, check=False
        )
        if shown.returncode != 0:
            return None
        (into / name).write_bytes(shown.stdout)
    return into


async def measure(page: Page, url: str, before: bool, idle_s: float, lamps: int) -> dict[str, float]:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Network.enable")
    received = {"bytes": 0.0}

    def finished(event: dict[str, Any]) -> None:
        received["bytes"] += event["encodedDataLength"]

    cdp.on("Network.loadingFinished", finished)
    await page.goto(url)
    await page.fill("#login-user", "dem")
    await page.fill("#login-password", PASSWORD)
    started = time.perf_counter()
    await page.click("#login-form button[type=submit]")
    if before:
        last_dot = page.locator("#map circle[data-device]").nth(lamps - 1)
        await last_dot.wait_for(state="attached", timeout=300_000)
    else:
        await page.locator("#map[data-ready=yes]").wait_for(state="attached", timeout=300_000)
        await page.locator(".cluster-label").first.wait_for(timeout=300_000)
    first_map_s = time.perf_counter() - started
    await page.wait_for_timeout(2000)
    received["bytes"] = 0.0
    frames_js = (
        "(ms) => new Promise((done) => { const out = []; let last = performance.now();"
        " const end = last + ms; function tick(now) { out.push(now - last); last = now;"
        " if (now < end) requestAnimationFrame(tick); else done(out); } requestAnimationFrame(tick); })"
    )
    if before:
        frames = await page.evaluate(frames_js, 11_000)  # two refreshes
    else:
        frames_task = asyncio.ensure_future(page.evaluate(frames_js, 9_000))
        await page.wait_for_timeout(300)
        await page.evaluate(
            "() => { const m = window.lamplighter.map; const c = m.getCenter();"
            " m.easeTo({ zoom: 17, duration: 4000 });"
            " setTimeout(() => m.easeTo({ center: c, zoom: 12, duration: 4000 }), 4200); }"
        )
        frames = await frames_task
    await page.wait_for_timeout(max(0.0, idle_s * 1000 - 11_000))
    idle_bytes_per_min = received["bytes"] * 60 / max(idle_s, 11.0)
    heap = await cdp.send("Runtime.getHeapUsage")
    ordered = sorted(frames)
    return {
        "first_map_s": first_map_s,
        "idle_mb_per_min": idle_bytes_per_min / 2**20,
        "frame_p50_ms": statistics.median(ordered),
        "frame_p95_ms": ordered[int(len(ordered) * 0.95)],
        "frame_max_ms": ordered[-1],
        "heap_mb": heap["usedSize"] / 2**20,
    }


async def changing(ctl: Controller, stop: asyncio.Event) -> None:
    """50 lamps change level every 5 s."""
    ids = list(ctl.devices)
    n = 0
    while not stop.is_set():
        for i in range(50):
            device = ids[(n * 50 + i) * 97 % len(ids)]
            ctl.fleet.record_reading(reading(device, (n * 10) % 100))
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lamps", type=int, default=50_000)
    parser.add_argument("--idle-s", type=float, default=60)
    parser.add_argument("--before", default=BEFORE_REV, help="git revision of the page to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        write_city(config, args.lamps, interval_s=3600, data_dir=Path(tmp), streets=True)
        settings = api_only(load_config(config))
        ctl = Controller(settings)
        await ctl.start()
        await ctl.auth.create_user("dem", "operator", PASSWORD)
        for i, device_id in enumerate(ctl.devices):
            ctl.fleet.record_reading(reading(device_id, (0, 60, 100)[i % 3]))
        await ctl.registry.save_states(ctl.fleet.take_dirty_rows())
        app = create_app(ControllerService(ctl))
        (Path(tmp) / "before").mkdir()
        old = old_dashboard(args.before, Path(tmp) / "before")
        if old is not None:
            app.router.routes.insert(0, _mount("/before", old))
        server = ApiServer(app, "127.0.0.1", 0)
        await server.start()
        stop = asyncio.Event()
        churn = asyncio.create_task(changing(ctl, stop))
        results: dict[str, dict[str, float]] = {}
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--enable-unsafe-swiftshader"]
            )
            for name, path, before in (("after", "/dashboard/", False), ("before", "/before/", True)):
                if before and old is None:
                    continue
                page = await browser.new_page(viewport={"width": 1920, "height": 1080})
                results[name] = await measure(page, server.url + path, before, args.idle_s, args.lamps)
                await page.close()
            await browser.close()
        stop.set()
        await churn
        await server.stop()
        await ctl.stop()
    print(f"\nDashboard with {args.lamps:,} lamps, 1920×1080, headless Chromium (WebGL in software)")
    for name, r in results.items():
        print(
            f"  {name:6}: first map {r['first_map_s']:.1f} s, idle {r['idle_mb_per_min']:.2f} MB/min, "
            f"frames p50 {r['frame_p50_ms']:.0f} ms p95 {r['frame_p95_ms']:.0f} ms "
            f"max {r['frame_max_ms']:.0f} ms, "
            f"JS heap {r['heap_mb']:.0f} MB"
        )


def _mount(prefix: str, directory: Path) -> Any:
    from starlette.routing import Mount

    return Mount(prefix, app=StaticFiles(directory=directory, html=True))


if __name__ == "__main__":
    asyncio.run(main())
