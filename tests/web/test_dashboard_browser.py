"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a real
`flp serve` on the simulation engine. The tests share one server and one Flower job and run in
file order: the job is started from the form, then watched, audited, reconnected to and tampered
with (last: a broken chain stays broken)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.live_server import rebuilt_and_live
from tests.web.conftest import AUDITOR, ServeProcess

WAIT_MS = 150_000  # upper bounds only: every wait ends as soon as the page shows the outcome
state: dict[str, Any] = {}
page_errors: list[str] = []  # uncaught script errors (a CSP refusal, a bad fragment) on any page


def login(browser: Any, serve: ServeProcess, username: str, password: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    context.on("page", lambda p: p.on("pageerror", lambda exc: page_errors.append(f"{p.url}: {exc}")))
    page = context.new_page()
    page.goto(f"{serve.url}/ui")
    assert page.url.endswith("/ui/login"), "no session: the page sends the browser to the login form"
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{serve.url}/ui")
    cookie = next(c for c in context.cookies() if c["name"] == "flp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "flp_session" not in page.evaluate("document.cookie"), "scripts cannot read the session"
    return context, page


def csrf_of(page: Any) -> str:
    headers = page.get_attribute("body", "hx-headers")
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', headers or "")
    assert found, headers
    return found.group(1)


def test_start_a_flower_job_from_the_form_and_watch_board_and_chart_live(
    browser: Any, serve: ServeProcess, screenshots: Path
) -> None:
    context, board = login(browser, serve, "admin", serve.admin_password())
    state["admin"] = context
    board.wait_for_selector("#live-status[data-state=live]")
    board_load = board.evaluate("window.flpPageLoadId")

    board.fill("#start-form input[name=rounds]", "3")
    board.fill("#start-form input[name=num_clients]", "3")
    board.fill("#start-form input[name=min_clients]", "3")
    board.click("#start-form button[type=submit]")
    board.wait_for_selector("#start-result .result.ok")
    job_id = re.search(r"job (\w+) started", board.inner_text("#start-result")).group(1)  # type: ignore[union-attr]
    state["job_id"] = job_id
    board.wait_for_selector(f"#job-{job_id}")  # the new job's row arrived over SSE

    job = context.new_page()
    job.goto(f"{serve.url}/ui/jobs/{job_id}")
    job_load = job.evaluate("window.flpPageLoadId")
    job.evaluate(
        """() => { window.flpSeen = [];
        const c = document.getElementById('metrics-chart');
        new MutationObserver(() => window.flpSeen.push(Number(c.dataset.points)))
            .observe(c, {attributes: true, attributeFilter: ['data-points']}); }"""
    )
    job.wait_for_selector("#job-head[data-status=completed]")
    job.wait_for_function("() => document.getElementById('metrics-chart').dataset.points === '3'")
    board.wait_for_selector(f"#job-{job_id}[data-status=completed][data-round='3']")

    assert job.evaluate("window.flpPageLoadId") == job_load, "the job page was reloaded"
    assert board.evaluate("window.flpPageLoadId") == board_load, "the board was reloaded"
    seen = job.evaluate("window.flpSeen")
    assert seen == sorted(seen) and [n for i, n in enumerate(seen) if n and n not in seen[:i]] == [1, 2, 3], (
        f"the chart gains one point per round, live: {seen}"
    )

    events = serve.events(job_id)
    completed = [e for e in events if e["type"] == "RoundCompleted"]
    assert [e["data"]["round"] for e in completed] == [1, 2, 3]
    assert [e["data"]["round"] for e in events if e["type"] == "RoundStarted"] == [1, 2, 3]
    state["clients"] = sorted(e["data"]["client_id"] for e in events if e["type"] == "ClientJoined")
    chart = job.evaluate("Object.fromEntries(window.flpChart.data.datasets.map(d => [d.label, d.data]))")
    assert chart["central:central_acc"] == [e["data"]["central_metrics"]["central_acc"] for e in completed]
    assert chart["central:central_loss"] == [e["data"]["central_metrics"]["central_loss"] for e in completed]
    assert len(job.query_selector_all("#job-rounds tbody tr.done")) == 3
    assert job.query_selector("#cancel-form") is None, "a finished job has nothing to cancel"
    job.screenshot(path=str(screenshots / "job-page.png"), full_page=True)
    job.close()
    board.close()


def test_fleet_view_lists_the_jobs_clients(serve: ServeProcess) -> None:
    page = state["admin"].new_page()
    page.goto(f"{serve.url}/ui/fleet")
    for client_id in state["clients"]:
        row = page.query_selector(f"#client-{client_id}")
        assert row is not None and state["job_id"] in row.inner_text(), client_id
    assert len(state["clients"]) == 3
    page.close()


def test_bad_input_shows_the_reason_inline_and_appends_nothing(browser: Any, serve: ServeProcess) -> None:
    page = state["admin"].new_page()
    page.goto(f"{serve.url}/ui")
    before = serve.job_total()
    page.fill("#start-form input[name=rounds]", "0")
    page.click("#start-form button[type=submit]")
    page.wait_for_selector("#start-result .result.error")
    text = page.inner_text("#start-result")
    assert "422" in text and "rounds" in text and "greater than or equal to 1" in text, text

    page.fill("#start-form input[name=rounds]", "3")
    page.fill("#start-form input[name=strategy]", "fedmagic")
    page.click("#start-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('start-result').innerText.includes('strategy')")
    text = page.inner_text("#start-result")
    assert "fedavg" in text and "fedprox" in text and "rounds" not in text, text
    assert serve.job_total() == before, "a refused form appends nothing"
    page.close()


def test_auditor_sees_no_controls_and_a_forged_post_is_refused(browser: Any, serve: ServeProcess) -> None:
    job_id = state["job_id"]
    context, page = login(browser, serve, *AUDITOR)
    assert page.query_selector("#start-form") is None
    page.goto(f"{serve.url}/ui/jobs/{job_id}")
    assert page.query_selector("#cancel-form") is None
    assert page.query_selector(f"a[href='/ui/jobs/{job_id}/audit']") is not None
    before = serve.job_total()
    csrf = csrf_of(page)
    form = {"name": "forged", "rounds": "1", "min_clients": "1", "runtime": "external"}
    forged = context.request.post(f"{serve.url}/ui/jobs", form=form, headers={"X-CSRF-Token": csrf})
    assert forged.status == 403, forged.text()
    api = context.request.post(f"{serve.url}/jobs", data={"name": "x", "rounds": 1, "min_clients": 1})
    assert api.status == 403, "the JSON API refuses the cookie session's unsafe call too"
    assert serve.job_total() == before
    context.close()


def test_a_forged_post_without_the_csrf_token_is_refused(serve: ServeProcess) -> None:
    context = state["admin"]
    form = {"name": "csrf", "rounds": "1", "min_clients": "1", "runtime": "external"}
    before = serve.job_total()
    response = context.request.post(f"{serve.url}/ui/jobs", form=form)
    assert response.status == 403 and "CSRF" in response.text()
    assert serve.job_total() == before


def test_the_page_reconnects_after_kill_9_and_shows_what_changed_meanwhile(serve: ServeProcess, tmp_path: Path) -> None:
    context = state["admin"]
    page = context.new_page()
    page.goto(f"{serve.url}/ui")
    page.wait_for_selector("#live-status[data-state=live]")
    load = page.evaluate("window.flpPageLoadId")

    page.route("**/ui/live/**", lambda route: route.abort())  # the browser stays away until unrouted
    serve.kill9()
    page.wait_for_selector("#live-status[data-state=reconnecting]")
    serve.start()
    with serve.admin as http:
        r = http.post("/jobs", json={"name": "while away", "rounds": 2, "min_clients": 1, "runtime": "external"})
        assert r.status_code == 201, r.text
        job_id = r.json()["events"][0]["data"]["job_id"]
        assert http.post(f"/jobs/{job_id}/cancel", json={"reason": "changed while away"}).status_code == 200
    assert page.query_selector(f"#job-{job_id}") is None
    page.unroute("**/ui/live/**")
    page.wait_for_selector(f"#job-{job_id}[data-status=cancelled]")
    page.wait_for_selector("#live-status[data-state=live]")
    assert page.evaluate("window.flpPageLoadId") == load, "reconnected without a reload"
    page.close()
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        rebuilt, live = pool.submit(lambda: asyncio.run(rebuilt_and_live(serve.data_dir, tmp_path / "r.db"))).result()
    assert rebuilt == live, "the read models the pages show equal a rebuild from the log (RoundStarted included)"


def test_audit_view_verified_then_broken_after_tampering(serve: ServeProcess, screenshots: Path) -> None:
    job_id = state["job_id"]
    page = state["admin"].new_page()
    page.goto(f"{serve.url}/ui/jobs/{job_id}/audit")
    assert page.inner_text("#verify-badge") == "verified"
    events = serve.events(job_id)
    assert len(page.query_selector_all("#events tbody tr")) == len(events)
    first = page.query_selector("#events tbody tr")
    assert first is not None and events[0]["hash"][:16] in first.inner_text()
    page.fill("#version-input", "1")
    page.click("#version-form button[type=submit]")
    page.wait_for_selector("text=State as of version 1 of")
    assert '"status": "pending"' in page.inner_text("#state-json")
    page.goto(f"{serve.url}/ui/jobs/{job_id}/audit")
    page.screenshot(path=str(screenshots / "audit-view.png"), full_page=True)

    target = next(e for e in events if e["type"] == "RoundCompleted")
    db = sqlite3.connect(serve.data_dir / "flp.db")
    try:
        data = target["data"]["central_metrics"]
        tampered = dict(target["data"], central_metrics={**data, "central_acc": 0.999})
        import json

        db.execute(
            "UPDATE events SET data = ? WHERE position = ?",
            (json.dumps(tampered, separators=(",", ":"), sort_keys=True), target["position"]),
        )
        db.commit()
    finally:
        db.close()
    page.reload()
    badge = page.query_selector("#verify-badge")
    assert badge is not None
    assert badge.get_attribute("data-ok") == "false"
    assert badge.inner_text() == f"broken at position {target['position']}"
    assert page.query_selector(f"#events tr.broken[data-position='{target['position']}']") is not None
    page.screenshot(path=str(screenshots / "audit-broken.png"), full_page=True)
    print(f"screenshots in {screenshots}")
    page.close()
    state["admin"].close()


def test_no_page_had_a_script_error() -> None:
    assert page_errors == []
