"""The dashboard's routes: login, the job board, a job's page, its audit view, the fleet, the
start/cancel forms, and the live fragment streams (SSE) the pages subscribe to.

Pages read read models (`ReadModelStore`) and the existing use cases (the job command handler,
the audit trail); they never touch the event store. A live fragment is rendered from the
projection change (`DocChange`) that the live hub fans out, as htmx out-of-band swaps."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sse_starlette import ServerSentEvent

from api.auth.guard import GuardedRoute
from api.auth.principal import ANONYMOUS_ADMIN, Principal, Role
from api.auth.session import SESSION_COOKIE, SESSION_TTL_SECONDS, LoginRequired, csrf_token
from api.deps import AuditDep, ContextDep, JobsDep, LiveDep, ProjectionsDep, ReadModelsDep, auth_dep
from api.errors import NotFound, problem
from api.ports import LiveFeed
from api.responses import LiveStream
from api.route_table import add_routes
from api.routes.jobs import JobId
from api.schemas import StartJobRequest
from api.web.views import HERE, render
from commands.handlers import CommandResult, new_id
from domain import commands as c
from domain.errors import DomainError
from domain.events import JobConfig
from persistence.ports import ConcurrencyError
from projections.ports import Doc, ReadModelStore
from projections.runner import ProjectionRunner

router = APIRouter(include_in_schema=False)
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)]
After = Annotated[int | None, Query(ge=0, le=2**53, description="like Last-Event-ID")]
BOARD_LIMIT = 10_000  # jobs read to sort the board newest first (the read model orders by key)
BOARD_ROWS = 100  # rows the board shows first (?rows= up to 1000): first paint stays fast
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
START_FIELDS = (
    "name",
    "model",
    "strategy",
    "rounds",
    "min_clients",
    "num_clients",
    "partitioning",
    "dirichlet_alpha",
    "seed",
    "runtime",
)


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Every static file by its bare name (read once: a fixed set, so no path from a request
    ever reaches the file system)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted((HERE / "static").rglob("*")):
        if path.is_file() and path.suffix in TYPES:
            files[path.name] = (path.read_bytes(), TYPES[path.suffix])
    return files


STATIC = _load_static()


# --- helpers --------------------------------------------------------------------------------------


def principal_of(request: Request) -> Principal:
    principal: Principal = getattr(request.state, "principal", None) or ANONYMOUS_ADMIN
    return principal


def _can(principal: Principal, role: Role) -> bool:
    return principal.has_any(frozenset({role}))


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    principal = principal_of(request)
    session = request.cookies.get(SESSION_COOKIE)
    html = render(
        template,
        user=principal.subject,
        roles=sorted(str(r) for r in principal.roles),
        can_operate=_can(principal, Role.OPERATOR),
        can_audit=_can(principal, Role.AUDITOR),
        csrf=csrf_token(session) if session else "",
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})


def fragment(template: str, code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, status=code, **context), status_code=code)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=50)
    return {k: v[0] for k, v in fields.items() if v}


def _validation_messages(exc: ValidationError) -> list[str]:
    messages = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        messages.append(f"{where}: {msg}" if where else msg)
    return messages


async def _settled(projections: ProjectionRunner, result: CommandResult) -> None:
    """Read your writes: answer once the read models show the command (the page reads them)."""
    if result.events:
        with contextlib.suppress(TimeoutError):
            await projections.wait_for(result.events[-1].position, timeout=5.0)


# --- login ----------------------------------------------------------------------------------------


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=303)


@router.get("/ui/static/{name}")
async def static(name: Annotated[str, PathParam(max_length=100)]) -> Response:
    found = STATIC.get(name)
    if found is None:
        raise NotFound(f"no static file {name}")
    content, media_type = found
    return Response(content, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/ui/login")
async def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", error=None, username="")


def _same_site_form(request: Request) -> None:
    """Login and logout carry no session yet (or end it), so no CSRF token: refuse them when the
    browser says another site sent the form (Sec-Fetch-Site, sent by every current browser)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise HTTPException(403, "this form may only be sent from the dashboard itself")


@router.post("/ui/login")
async def login(request: Request) -> Response:
    _same_site_form(request)
    auth = await auth_dep(request)
    if not auth.settings.auth_enabled:
        return RedirectResponse("/ui", status_code=303)
    form = await _form(request)
    username, password = form.get("username", "")[:64], form.get("password", "")[:1024]
    principal = await auth.login(username, password) if username and password else None
    if principal is None:
        return page(request, "login.html", status=400, error="wrong username or password", username=username)
    token = auth.issue(principal, ttl_seconds=SESSION_TTL_SECONDS)
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_TTL_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        # behind the TLS proxy (compose/nginx) too; a spoofed header can only make it stricter
        secure=request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https",
    )
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> RedirectResponse:
    _same_site_form(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# --- pages ----------------------------------------------------------------------------------------


def _newest_first(docs: list[Doc]) -> list[Doc]:
    return sorted(docs, key=lambda d: (d.get("created_at") or "", d.get("job_id") or ""), reverse=True)


@router.get("/ui")
async def board(
    request: Request,
    rm: ReadModelsDep,
    projections: ProjectionsDep,
    rows: Annotated[int, Query(ge=1, le=1000, description="how many of the newest jobs to show")] = BOARD_ROWS,
) -> HTMLResponse:
    after = projections.position  # read first: the stream replays whatever changes after it
    jobs = _newest_first(await rm.list_docs("job_board", BOARD_LIMIT, 0))[:rows]
    total = await rm.count("job_board")
    return page(request, "board.html", jobs=jobs, total=total, after=after, rows=rows, title="Jobs")


@router.get("/ui/fleet")
async def fleet(request: Request, rm: ReadModelsDep, projections: ProjectionsDep) -> HTMLResponse:
    after = projections.position
    clients = await rm.list_docs("client_fleet", 1000, 0)
    return page(request, "fleet.html", clients=clients, after=after, title="Fleet")


@router.get("/ui/jobs/{job_id}")
async def job_page(job_id: JobId, request: Request, rm: ReadModelsDep, projections: ProjectionsDep) -> HTMLResponse:
    after = projections.position
    job = await rm.get("job_detail", job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return page(request, "job.html", job=job, after=after, title=f"Job {job_id}")


@router.get("/ui/jobs/{job_id}/audit")
async def audit_page(
    job_id: JobId,
    request: Request,
    trail: AuditDep,
    jobs: JobsDep,
    version: Annotated[int | None, Query(ge=1, le=2**53, description="show the state as of this version")] = None,
) -> HTMLResponse:
    events = await trail.history(job_id)
    if not events:
        raise NotFound(f"job {job_id} not found")
    report = (await trail.verify(job_id)).to_dict()
    head = events[-1].version
    at_version = min(version or head, head)
    at, state = await jobs.state_at(job_id, at_version)
    diff = await trail.diff(job_id, at - 1, at)
    return page(
        request,
        "audit.html",
        job_id=job_id,
        events=events,
        report=report,
        head=head,
        at=at,
        state=orjson.dumps(state.to_dict(at), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode(),
        diff=diff,
        title=f"Audit {job_id}",
    )


# --- forms (operators) ----------------------------------------------------------------------------


@router.post("/ui/jobs")
async def start_job(request: Request, jobs: JobsDep, projections: ProjectionsDep, ctx: ContextDep) -> HTMLResponse:
    form = await _form(request)
    data: dict[str, Any] = {k: form[k].strip() for k in START_FIELDS if form.get(k, "").strip()}
    data.setdefault("name", "dashboard job")
    try:
        body = StartJobRequest.model_validate(data)
        config = JobConfig.model_validate(body.model_dump(exclude={"job_id"}))
    except ValidationError as exc:
        return fragment("_form_result.html", 422, ok=False, messages=_validation_messages(exc))
    job_id = new_id().replace("-", "")[:12]
    try:
        result = await jobs.execute(job_id, c.StartJob(job_id=job_id, config=config), ctx)
    except DomainError as exc:
        return fragment("_form_result.html", 409, ok=False, messages=[exc.message])
    await _settled(projections, result)
    return fragment("_form_result.html", 201, ok=True, job_id=job_id, messages=[f"job {job_id} started"])


@router.post("/ui/jobs/{job_id}/cancel")
async def cancel_job(
    job_id: JobId, request: Request, jobs: JobsDep, projections: ProjectionsDep, ctx: ContextDep
) -> HTMLResponse:
    form = await _form(request)
    reason = (form.get("reason") or "cancelled from the dashboard").strip()[:2000] or "cancelled from the dashboard"
    try:
        result = await jobs.execute(job_id, c.CancelJob(reason=reason), ctx)
    except (DomainError, ConcurrencyError) as exc:
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        return fragment("_form_result.html", 409, ok=False, messages=[message])
    await _settled(projections, result)
    return fragment("_form_result.html", 200, ok=True, job_id=None, messages=[f"job {job_id} cancelled"])


# --- live fragments -------------------------------------------------------------------------------


def _resume_from(header: str | None, query: int | None) -> int:
    candidates = [query or 0]
    if header and header.isdigit():
        candidates.append(int(header))
    return max(candidates)  # the page's snapshot or what the browser last saw, whichever is newer


async def _fragments(
    live: LiveFeed,
    rm: ReadModelStore,
    projection: str,
    key: str | None,
    after: int,
    draw: Callable[[Doc], str],
) -> AsyncIterator[ServerSentEvent]:
    """Each change of `projection` (one key, or all) after `after`, as an HTML fragment of
    out-of-band swaps; `event: live` once caught up. The id is the change's position, so a
    reconnecting browser resumes with Last-Event-ID and misses nothing."""
    sub = live.subscribe(projection, key)
    try:
        sent = after
        for missed in await rm.changed_after(projection, after, key):
            if missed.doc is not None:
                yield ServerSentEvent(data=draw(missed.doc), event="change", id=str(missed.position))
            sent = max(sent, missed.position)
        yield ServerSentEvent(data=orjson.dumps({"position": sent}).decode(), event="live", id=str(sent))
        while True:  # until sse-starlette, which listens for the disconnect, cancels us in `get`
            changes = await sub.get()  # (asking `request.is_disconnected()` per batch cost a cancel scope each)
            if changes is None:
                return  # too slow: the browser reconnects with Last-Event-ID
            for change in changes:
                if change.position <= sent or change.doc is None:
                    continue
                yield ServerSentEvent(data=draw(change.doc), event="change", id=str(change.position))
                sent = change.position
    finally:
        live.unsubscribe(sub)


@router.get("/ui/live/board")
async def live_board(
    live: LiveDep, rm: ReadModelsDep, last_event_id: LastEventId = None, after: After = None
) -> LiveStream:
    def draw(doc: Doc) -> str:
        return render("_board_row.html", job=doc, oob=True)

    start = _resume_from(last_event_id, after)
    return LiveStream(_fragments(live, rm, "job_board", None, start, draw), ping=10)


@router.get("/ui/live/fleet")
async def live_fleet(
    live: LiveDep, rm: ReadModelsDep, last_event_id: LastEventId = None, after: After = None
) -> LiveStream:
    def draw(doc: Doc) -> str:
        return render("_fleet_row.html", client=doc, oob=True)

    start = _resume_from(last_event_id, after)
    return LiveStream(_fragments(live, rm, "client_fleet", None, start, draw), ping=10)


@router.get("/ui/live/jobs/{job_id}")
async def live_job(
    job_id: JobId,
    request: Request,
    live: LiveDep,
    rm: ReadModelsDep,
    last_event_id: LastEventId = None,
    after: After = None,
) -> LiveStream:
    if await rm.get("job_detail", job_id) is None:
        raise NotFound(f"job {job_id} not found")
    principal = principal_of(request)
    session = request.cookies.get(SESSION_COOKIE)
    context = {
        "can_operate": _can(principal, Role.OPERATOR),
        "can_audit": _can(principal, Role.AUDITOR),
        "csrf": csrf_token(session) if session else "",
    }

    def draw(doc: Doc) -> str:
        return render("_job_live.html", job=doc, oob=True, **context)

    start = _resume_from(last_event_id, after)
    return LiveStream(_fragments(live, rm, "job_detail", job_id, start, draw), ping=10)


def install(app: FastAPI) -> None:
    """Serve the dashboard from `app`: its routes, and a browser's page request without a session
    sent to the login form (any other client gets the 401)."""

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if "text/html" in request.headers.get("accept", ""):  # a browser: show the login form
            return RedirectResponse("/ui/login", status_code=303)
        return problem(401, "Unauthorized", str(exc.detail))

    add_routes(app, router, GuardedRoute)
