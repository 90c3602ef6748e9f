"""The intake page: ``GET``/``POST /intake/{token}``, server-rendered, no JavaScript.

Every answer carries the contract's headers (CSP that allows only our own stylesheet and
forms posting back to us, no referrer, no caching). A POST must come from our own page:
its ``Origin`` (when sent) must be ``public_url``'s, ``Sec-Fetch-Site`` (when sent) must
say same-origin, and its ``csrf`` field must match the link. Bodies over 8 KiB get 413
before they are read to the end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rotator.errors import RotatorError
from rotator.intake import i18n
from rotator.intake import links as L
from rotator.intake.service import Answer, IntakeService, Page
from rotator.logs import get_logger

log = get_logger(__name__)

MAX_FORM_BYTES = 8192
CSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]
_OWN = {name for name, _ in HEADERS}
_CSS = resources.files("rotator.intake").joinpath("static/intake.css").read_bytes()
_ENV = Environment(
    loader=PackageLoader("rotator.intake", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class SecurityHeaders:
    """The contract's headers on every answer, errors and 404s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OWN]
                message["headers"] = kept + HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def create_app(service: IntakeService) -> ASGIApp:
    allowed_origin = origin_of(service.public_url)

    async def stylesheet(_: Request) -> Response:
        return Response(_CSS, media_type="text/css")

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def intake(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            if request.method in ("GET", "HEAD"):
                page = await service.open(token)
                if page is None:
                    return _render_gone(request)
                return _render(request, page, status=200, token=token)
            return await _post(request, token)
        except RotatorError as exc:
            # Vault down or its state changing under us: the owner is told to come back, and
            # the link is not used up (a key already stored is stored again, harmlessly).
            log.warning("intake.unavailable", method=request.method.lower(), error=str(exc))
            response = _render_error(request, "unavailable", 503)
            response.headers["retry-after"] = "60"
            return response

    async def _post(request: Request, token: str) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
            return _render_error(request, "too_large", 413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return _render_error(request, "too_large", 413)
        if not _same_origin(request, allowed_origin):
            return _render_error(request, "forbidden", 403)
        try:
            form = parse_qs(body.decode("utf-8"), max_num_fields=10, keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return _render_error(request, "forbidden", 400)
        field = {name: values[0] for name, values in form.items() if values}
        if not L.csrf_ok(token, field.get("csrf")):
            return _render_error(request, "forbidden", 403)
        outcome = await service.submit(token, field.get("api_key", ""), field.get("expires_at", ""))
        if outcome is None:
            return _render_gone(request)
        return _render_outcome(request, token, outcome)

    routes = [
        Route("/static/intake.css", stylesheet),
        Route("/healthz", healthz),
        Route("/intake/{token}", intake, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.settings = service.settings
    return SecurityHeaders(app)


def _same_origin(request: Request, allowed: str) -> bool:
    """Browsers say where a form came from; another site's form is refused.

    Under ``Referrer-Policy: no-referrer`` Chromium sends ``Origin: null`` even for our own
    form, so a ``null`` origin is taken only together with ``Sec-Fetch-Site: same-origin``.
    """
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    if origin is None or origin.lower() == allowed:
        return True
    return origin == "null" and site == "same-origin"


def _language(request: Request, page: Page | None, owner: str | None = None) -> str:
    """The owner's language if known, else the browser's, else English."""
    if page is not None and page.language in i18n.STRINGS:
        return page.language
    if owner in i18n.STRINGS:
        return str(owner)
    return i18n.negotiate(request.headers.get("accept-language"))


def _html(template: str, status: int, **context: Any) -> HTMLResponse:
    text = _ENV.get_template(template).render(**context)
    return HTMLResponse(text, status_code=status)


def _translator(language: str) -> Any:
    words = i18n.strings(language)

    def t(key: str, **values: Any) -> str:
        return words[key].format(**values)

    return t


def _render_gone(request: Request) -> Response:
    """One page for every link that cannot be used: unknown, used, expired, withdrawn, dead."""
    language = _language(request, None)
    return _html(
        "message.html", 410, lang=language, t=_translator(language), title="gone_title", text="gone"
    )


def _render_error(request: Request, kind: str, status: int) -> Response:
    language = _language(request, None)
    return _html(
        "message.html",
        status,
        lang=language,
        t=_translator(language),
        title=f"{kind}_title",
        text=kind,
    )


def _render_outcome(request: Request, token: str, outcome: Answer) -> Response:
    if outcome.accepted:
        language = _language(request, outcome.page)
        return _html("accepted.html", 200, lang=language, t=_translator(language), outcome=outcome)
    if outcome.page is None:
        # That was the link's last attempt: say why, and that it is gone.
        language = _language(request, None, outcome.language)
        settings = request.app.state.settings
        return _html(
            "message.html",
            410,
            lang=language,
            t=_translator(language),
            title="gone_title",
            text="gone",
            reason=outcome.message,
            max_days=settings.expiry.max_lifetime_days,
            model=settings.mistral.model,
        )
    status = {"busy": 503, "conflict": 409}.get(outcome.message, 422)
    response = _render(request, outcome.page, status=status, token=token, outcome=outcome)
    if status == 503:
        response.headers["retry-after"] = "60"
    return response


def _render(
    request: Request, page: Page, *, status: int, token: str, outcome: Answer | None = None
) -> Response:
    language = _language(request, page)
    settings = request.app.state.settings
    max_days = settings.expiry.max_lifetime_days
    today = datetime.now(page.link_expires_at.tzinfo).date()
    return _html(
        "page.html",
        status,
        lang=language,
        t=_translator(language),
        page=page,
        outcome=outcome,
        csrf=L.csrf_for(token),
        min_date=(today + timedelta(days=1)).isoformat(),
        max_date=(today + timedelta(days=max_days)).isoformat(),
        max_days=max_days,
        model=settings.mistral.model,
        date=lambda moment: i18n.format_date(moment.isoformat(), language),
        date_text=lambda text: i18n.format_date(text, language),
    )
