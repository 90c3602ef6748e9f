"""Vault's hot reads straight on urllib3, in the connection pool requests already keeps.

A restart reads two KV v2 versions and a poll lists a folder in pages; through hvac each
request pays for ``requests.Session.request`` (settings merged, a PreparedRequest, hooks,
cookies, a Response): 1.5 ms of CPU a read against 0.65 ms for the same request on the
urllib3 pool (issue 12). :meth:`DirectReads.request` sends those reads on the *same* pool
the session's adapter holds, so whatever that pool carries keeps applying: the deadline
watchdog's connection classes, TLS and CA settings, a client certificate, the proxy read
from the environment, the kept-alive connections themselves.

It answers exactly as hvac's ``JSONAdapter`` would: the JSON of a 200, hvac's exception for
a status of 400 or more (``hvac.utils.raise_for_error``, as ``RawAdapter`` calls it), a raw
:class:`Answer` otherwise; and it fails with the ``requests`` exception that
``requests.adapters.HTTPAdapter.send`` (or, for the body, ``Response.iter_content``) raises
for the same urllib3 error. So the one mapping in :meth:`VaultStore._mapped` serves both.

What this path does not do, it leaves to hvac, which does it as before: a redirect (requests
follows it), and cookies (a load balancer's affinity cookie: requests keeps and sends it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlparse

import hvac
import requests
import urllib3
from hvac import utils as hvac_utils
from requests import exceptions as rq_exc
from requests.adapters import HTTPAdapter
from requests.utils import get_encoding_from_headers, requote_uri, select_proxy, urldefragauth
from urllib3 import exceptions as u3_exc
from urllib3.connectionpool import HTTPConnectionPool

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
"""``requests.models.REDIRECT_STATI``: what requests follows (and so hvac does)."""


class Answer:
    """An answer hvac hands back as a raw ``requests.Response`` (a 200 that is not JSON, a
    status below 400 other than 200, any status with ``raise_exception=False``): the parts
    of a Response its readers use."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        # requests guesses a missing charset with charset_normalizer; UTF-8 with
        # replacement serves error messages as well (only they read this).
        encoding = get_encoding_from_headers(self.headers) or "utf-8"
        try:
            return self.content.decode(encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """Raises ValueError (JSONDecodeError, UnicodeDecodeError) like Response.json()."""
        return json.loads(self.content)


class DirectReads:
    """Requests on the pool of ``client``'s requests session, answered like hvac answers.

    Safe to share between threads: nothing changes after construction; the token and the
    namespace are read from the client's adapter at each request (a login replaces the
    token).
    """

    def __init__(self, client: hvac.Client, timeout: float) -> None:
        self._client = client
        adapter = client.adapter
        session = adapter.session
        # hvac joins base and path after stripping their slashes; requests then normalises
        # the URL (scheme and host in lower case, IDNA). Prepared once, for the base only.
        self._probe = requests.Request("GET", str(adapter.base_uri).strip("/") + "/").prepare()
        base = str(self._probe.url)
        self._base = base
        proxy = select_proxy(base, session.proxies)
        # As HTTPAdapter.request_url: to an HTTP proxy (not SOCKS, not a tunnel for https)
        # the request line carries the absolute URL.
        absolute = bool(proxy) and urlparse(base).scheme != "https"
        if absolute and proxy is not None and urlparse(proxy).scheme.lower().startswith("socks"):
            absolute = False
        self._prefix = (urldefragauth(base) if absolute else str(self._probe.path_url)).rstrip("/")
        # The session's headers (User-Agent, Accept-Encoding, Accept, Connection) under
        # hvac's own, as Session.request merges them.
        self._headers = {str(k): str(v) for k, v in session.headers.items()}
        if adapter.request_header:
            self._headers["X-Vault-Request"] = "true"
        # hvac's timeout as requests turns it into urllib3's: connect and each read.
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._pool: HTTPConnectionPool | None = None
        """The pool ``get_connection_with_tls_context`` gave: the same for every request to
        Vault (one URL, one TLS set-up), so asked for once: 20-35 us a request otherwise."""

    def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int] | None = None,
        *,
        raise_exception: bool = True,
    ) -> Any:
        """``client.adapter.request(method, url, params=..., raise_exception=...)``, answered
        alike: a dict (the JSON of a 200), an :class:`Answer`, or hvac's exception."""
        adapter = self._client.adapter
        session = adapter.session
        http = session.get_adapter(self._base)
        if session.cookies or not isinstance(http, HTTPAdapter):
            # A cookie to send (and keep up to date): requests' business. A transport
            # adapter other than requests' own has no urllib3 pool to borrow.
            return self._by_hvac(method, url, params, raise_exception)
        while "//" in url:
            url = url.replace("//", "/")  # as hvac: Vault's CLI reads // as /
        target = self._prefix + "/" + url.strip("/")
        if params:
            target += "?" + urlencode(params)
        headers = dict(self._headers)
        if adapter.token:
            headers["X-Vault-Token"] = adapter.token
        if adapter.namespace:
            headers["X-Vault-Namespace"] = adapter.namespace
        pool = self._pool
        if pool is None or pool.pool is None:
            # None yet, or closed since (the adapter closed, or the pool manager dropped it):
            # the pool requests would use now, as it looks it up for each request.
            pool = self._pool = _pool(http, self._probe, session)
        # The check requests makes before each request: OSError when the CA file is gone.
        # Untyped in types-requests; (conn, url, verify, cert) since requests 2.0.
        http.cert_verify(pool, self._base, session.verify, session.cert)  # type: ignore[no-untyped-call]
        body, status, answer_headers = _send(
            pool, method.upper(), requote_uri(target), headers, self._timeout
        )
        if (
            status in _REDIRECTS and "location" in answer_headers
        ) or "set-cookie" in answer_headers:
            # Followed by requests (which hvac lets do it), or a cookie the session must
            # learn: ask again through hvac, as every call went before.
            return self._by_hvac(method, url, params, raise_exception)
        if status >= 400 and raise_exception:
            raise_for_answer(
                method, self._base + url.strip("/"), Answer(status, answer_headers, body)
            )
        if status == 200:
            try:
                return json.loads(body)
            except ValueError:
                pass  # hvac hands back the response: not JSON, maybe a proxy's page
        return Answer(status, answer_headers, body)

    def _by_hvac(
        self, method: str, url: str, params: Mapping[str, str | int] | None, raise_exception: bool
    ) -> Any:
        return self._client.adapter.request(
            method.lower(), url, params=dict(params or {}), raise_exception=raise_exception
        )


def _pool(
    http: HTTPAdapter, probe: requests.PreparedRequest, session: requests.Session
) -> HTTPConnectionPool:
    """The pool HTTPAdapter.send takes for Vault's URL: a ProxyManager's behind a proxy."""
    verify = session.verify
    cert = session.cert
    try:
        pool = http.get_connection_with_tls_context(
            probe, verify, proxies=session.proxies, cert=cert
        )
    except u3_exc.LocationValueError as exc:
        raise rq_exc.InvalidURL(exc) from exc
    if not isinstance(pool, HTTPConnectionPool):  # the stubs say ConnectionPool
        raise TypeError(f"no HTTP connection pool for Vault: {type(pool).__name__}")
    return pool


def _send(
    pool: HTTPConnectionPool,
    method: str,
    target: str,
    headers: dict[str, str],
    timeout: urllib3.Timeout,
) -> tuple[bytes, int, Mapping[str, str]]:
    """One request, its body read in full; urllib3's errors as requests raises them."""
    try:
        # No retries and no redirects: what requests asks of urllib3 (its Retry(0,
        # read=False) fails the same way; retries=False raises the error itself).
        raw = pool.urlopen(
            method,
            target,
            headers=headers,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            retries=False,
            timeout=timeout,
        )
    except u3_exc.HTTPError as exc:
        raise _sent_error(exc) from exc
    except OSError as exc:
        raise rq_exc.ConnectionError(exc) from exc
    try:
        # Read here rather than with preload_content: an error reading the body maps as
        # requests maps it when it reads a body (Response.iter_content), not as a failure
        # to send. The watchdog bounds an answer that trickles in.
        body = raw.read(decode_content=True)
    except u3_exc.ProtocolError as exc:
        raise rq_exc.ChunkedEncodingError(exc) from exc
    except u3_exc.DecodeError as exc:
        raise rq_exc.ContentDecodingError(exc) from exc
    except u3_exc.ReadTimeoutError as exc:
        raise rq_exc.ConnectionError(exc) from exc
    except u3_exc.SSLError as exc:
        raise rq_exc.SSLError(exc) from exc
    finally:
        raw.release_conn()
    return body, raw.status, raw.headers


def _sent_error(exc: u3_exc.HTTPError) -> Exception:
    """HTTPAdapter.send's mapping of a failure to send or to get the answer's head."""
    if isinstance(exc, u3_exc.NewConnectionError):
        return rq_exc.ConnectionError(exc)  # a subclass of ConnectTimeoutError: first
    if isinstance(exc, u3_exc.ConnectTimeoutError):
        return rq_exc.ConnectTimeout(exc)
    if isinstance(exc, u3_exc.ProxyError):
        return rq_exc.ProxyError(exc)
    if isinstance(exc, u3_exc.SSLError):
        return rq_exc.SSLError(exc)
    if isinstance(exc, u3_exc.ReadTimeoutError):
        return rq_exc.ReadTimeout(exc)
    if isinstance(exc, u3_exc.InvalidHeader):
        return rq_exc.InvalidHeader(exc)
    if isinstance(exc, u3_exc.ProtocolError | u3_exc.ClosedPoolError | u3_exc.MaxRetryError):
        return rq_exc.ConnectionError(exc)
    return exc


def raise_for_answer(method: str, url: str, answer: Answer | requests.Response) -> None:
    """Raise hvac's exception for an error answer, as hvac's ``RawAdapter._raise_for_error``
    does: the errors of a JSON answer, else its text."""
    text = answer.text
    document: Any = None
    errors: Any = None
    if answer.headers.get("Content-Type") == "application/json":
        try:
            document = answer.json()
        except ValueError:
            pass
        else:
            # hvac calls .get on whatever JSON came; a list here would be its AttributeError.
            errors = document.get("errors") if isinstance(document, dict) else None
    hvac_utils.raise_for_error(
        method,
        url,
        answer.status_code,
        None if errors is not None else text,
        errors=errors,
        text=text,
        json=document,
    )
