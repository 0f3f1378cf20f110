"""The CPO dashboard (config section ``[dashboard]``, off unless configured): the network at a glance,
behind the dashboard password. Read-only, except retrying a failed chain job.

Pages: ``/login``; ``/`` with stations and connectors (live status), sessions in flight, the chain
job queue, chain head and the operator's gas balance, revenue settled today and this month, failed and
rejected sessions with their reasons. ``/`` refreshes its panels every few seconds (htmx)."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core_client.config import DashboardSettings
from core_client.web.dashboard_source import DashboardSource
from ev_network.web import CsrfError, check_csrf, session_middleware, static_mount, templates

TEMPLATES = templates(Path(__file__).resolve().parent / "templates")
REFRESH_S = 3


def create_dashboard_app(source: DashboardSource, settings: DashboardSettings) -> Starlette:
    """The dashboard's ASGI app over ``source``."""

    def logged_in(request: Request) -> bool:
        seen = request.session.get("seen")
        if not request.session.get("operator") or seen is None or time.time() - seen > settings.idle_timeout_s:
            request.session.pop("operator", None)
            return False
        request.session["seen"] = time.time()
        return True

    def page(request: Request, name: str, status: int = 200, **context: object) -> Response:
        return TEMPLATES.TemplateResponse(request, name, {"app_name": "EV Network: CPO dashboard", **context}, status)

    async def login_form(request: Request) -> Response:
        return page(request, "login.html", error=request.query_params.get("error"))

    async def login(request: Request) -> Response:
        await check_csrf(request)
        form = await request.form()
        if not settings.check_password(str(form.get("password", ""))):
            return page(request, "login.html", status=401, error="wrong password")
        request.session.update(operator=True, seen=time.time())
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        await check_csrf(request)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def overview(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=303)
        name = "panels.html" if request.headers.get("hx-request") else "dashboard.html"
        return page(
            request,
            name,
            chain=await source.chain(),
            stations=source.stations(),
            sessions=source.sessions_in_flight(),
            jobs=source.jobs(),
            problems=source.problems(),
            settled=source.settled(),
            revenue=source.revenue(time.time()),
            refresh_s=REFRESH_S,
            notice=request.session.pop("notice", None),
        )

    async def retry(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=303)
        await check_csrf(request)
        request.session["notice"] = source.retry_job(int(request.path_params["job_id"]))
        return RedirectResponse("/", status_code=303)

    async def csrf_failed(request: Request, exc: Exception) -> Response:
        return page(request, "login.html", status=403, error=str(exc))

    return Starlette(
        routes=[
            Route("/", overview),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/jobs/{job_id:int}/retry", retry, methods=["POST"]),
            static_mount(),
        ],
        middleware=[session_middleware("evn_dashboard")],
        exception_handlers={CsrfError: csrf_failed},
    )
