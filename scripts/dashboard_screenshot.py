"""Regenerate the README's dashboard screenshots (docs/dashboard-*.png): a platform on a scratch
data dir runs a real Flower job (simulation engine, 3 clients x 5 rounds), Debian's chromium
(Playwright, never `playwright install`) logs in and photographs the job board and the job page.

    .venv/bin/python scripts/dashboard_screenshot.py [OUT_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

from api.auth.service import read_admin_credentials
from config.settings import Settings
from flp.cli.api_client import auth_headers
from flp.demo import DEMO_JOB
from flp.server import running_server

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="flp-shot-") as scratch:
        settings = Settings(data_dir=Path(scratch), flower_mode="simulation", api_port=0, rate_limit_per_minute=0)
        async with running_server(settings) as srv:
            creds = read_admin_credentials(settings)
            assert creds is not None
            async with httpx.AsyncClient(base_url=srv.url, headers=auth_headers(settings), timeout=60) as http:
                created = (await http.post("/jobs", json={**DEMO_JOB, "runtime": "flower"})).raise_for_status()
                job_id = created.json()["events"][0]["data"]["job_id"]
                queued = {**DEMO_JOB, "name": "queued-fedprox", "strategy": "fedprox", "runtime": "external"}
                (await http.post("/jobs", json=queued)).raise_for_status()
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(300_000)
                await page.goto(f"{srv.url}/ui")
                await page.fill("input[name=username]", creds["username"])
                await page.fill("input[name=password]", creds["password"])
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector(f"#job-{job_id}[data-status=completed]")
                await page.screenshot(path=str(out / "dashboard-board.png"))
                await page.goto(f"{srv.url}/ui/jobs/{job_id}")
                await page.wait_for_selector("#live-status[data-state=live]")
                await page.screenshot(path=str(out / "dashboard-job.png"), full_page=True)
                await browser.close()
    print(f"wrote {out / 'dashboard-board.png'} and {out / 'dashboard-job.png'}")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "docs"
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(target))
