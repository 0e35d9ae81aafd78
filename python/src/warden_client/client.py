"""The client for Warden's control API (``warden run``), for StableNew and other Python programs.

Standard library only (``urllib`` for commands, ``http.client`` for the event and log streams), Python 3.8+.

    from warden_client import WardenClient, WardenError

    client = WardenClient(state_dir="/path/to/.warden")  # reads server.json and token
    client.start("webui")                                 # returns once the WebUI is healthy
    report = client.stop("webui")["report"]               # returns once the whole tree is confirmed dead
    assert report["survivors"] == []

    with client.events() as stream:                       # Server-Sent Events, reconnecting with Last-Event-ID
        for event in stream:
            if event["type"] == "transition":
                print(event["data"]["instance"], event["data"]["to"])

Every failure is a :class:`WardenError` whose ``code`` is the server's stable error code
(``UNKNOWN_INSTANCE``, ``PORT_IN_USE``, ``START_FAILED``, ``UNAUTHORIZED``, ...) or one of the
client's own (``NOT_RUNNING``, ``NOT_LOOPBACK``, ``UNREACHABLE``, ``TIMEOUT``, ``BAD_RESPONSE``). See docs/API.md.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Sequence, Tuple, cast

__all__ = ["WardenClient", "WardenError", "EventStream", "LogStream", "wait_for"]

#: Seconds a quick request (status, a command that answers 202, reset, shutdown) may take.
DEFAULT_TIMEOUT = 10.0
#: Seconds a waited start or restart may take: a real WebUI loads models for minutes (startupTimeoutMs 180 s).
DEFAULT_WAIT_TIMEOUT = 600.0
#: Seconds without a byte on the event stream before it counts as dead (the server sends a heartbeat every 15 s).
DEFAULT_IDLE_TIMEOUT = 45.0
#: Most lines one ``tail()`` may ask for (the server's limit).
MAX_TAIL_LINES = 10000


class WardenError(Exception):
    """A refused or failed request.

    ``code`` is the server's stable error code (``error.code`` of its JSON answer), or the client's own:
    ``NOT_RUNNING`` (no server.json: no ``warden run`` serves this state directory), ``NO_TOKEN``,
    ``UNREACHABLE`` (connection refused or reset), ``TIMEOUT`` (no answer in time; the command may
    still be carried out), ``BAD_RESPONSE`` (an answer that is not the JSON the API promises).
    ``status`` is the HTTP status, or ``None`` when no answer arrived. ``details`` holds the other
    fields of the server's error (``instanceId``, ``port``, ``holders``, ``survivors``, ...).
    """

    def __init__(self, code: str, message: str, status: Optional[int] = None, details: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details: Dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        return f"WardenError(code={self.code!r}, message={self.message!r}, status={self.status!r})"


class WardenClient:
    """Drives one ``warden run`` over its loopback HTTP API.

    ``url`` and ``token`` default to what ``warden run`` writes into its state directory:
    ``<state_dir>/server.json`` (``{"url": ..., "pid": ...}``) and ``<state_dir>/token``.
    ``timeout`` bounds quick requests; ``wait_timeout`` bounds waited starts and restarts.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        state_dir: str = ".warden",
        timeout: float = DEFAULT_TIMEOUT,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> None:
        self.state_dir = state_dir
        self.timeout = timeout
        self.wait_timeout = wait_timeout
        self._url_from_state_dir = url is None
        self.server_pid: Optional[int] = None
        if url is None:
            url, self.server_pid = _read_server_file(state_dir)
        self.url = url.rstrip("/")
        self.token = token if token is not None else _read_token(state_dir)
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme != "http" or parsed.hostname is None:
            raise WardenError("BAD_URL", f"The control API URL must look like http://127.0.0.1:7870 (got {self.url!r}).")
        _require_loopback(self.url)

    # ── commands ────────────────────────────────────────────────────────────────────────────────────

    def status(self) -> Dict[str, Any]:
        """The supervisor's status: ``{"instances": [...], "watchdog": {...}, "holdRestarts", "orphanedDetected"}``."""
        return self._request("GET", "/api/status")

    def config(self) -> Dict[str, Any]:
        """Instance ids, ports, timeouts, restart policies and the watchdog thresholds (never commands or env)."""
        return self._request("GET", "/api/config")

    def instance(self, instance_id: str) -> Dict[str, Any]:
        """One instance's entry of :meth:`status`; ``UNKNOWN_INSTANCE`` if it is not configured."""
        status = self.status()
        for entry in status.get("instances", []):
            if entry.get("id") == instance_id:
                return entry
        known = ", ".join(str(entry.get("id")) for entry in status.get("instances", [])) or "none"
        raise WardenError("UNKNOWN_INSTANCE", f'No instance "{instance_id}" is configured (known: {known})', 404, {"instanceId": instance_id})

    def start(
        self,
        instance_id: str,
        wait: bool = True,
        timeout: Optional[float] = None,
        *,
        args: Optional[Sequence[str]] = None,
        launch_profile: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Starts an instance. With ``wait`` returns ``{"instance": status}`` once it is running (healthy);
        without, ``{"accepted": True, ...}`` at once (the outcome arrives as events).
        ``args`` replaces the configured argv for this start only (``["--medvram", "--api"]``);
        ``launch_profile`` picks one of the instance's configured launch profiles instead (not both).
        Raises ``START_FAILED`` if it crashed or failed on the way, ``PORT_IN_USE``/``FOREIGN_INSTANCE``
        if a WebUI not started by Warden is in the way."""
        try:
            return self._command(instance_id, "start", wait, None, timeout, _launch_fields(args, launch_profile))
        except WardenError as error:
            self._attach_hints(instance_id, error)
            raise

    def stop(self, instance_id: str, wait: bool = True, timeout_ms: Optional[int] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Stops an instance. With ``wait`` returns ``{"instance": status, "report": report}`` once the shell
        parent and the whole Python tree are confirmed dead; ``report`` holds ``killed``, ``survivors``,
        ``escalated`` and ``durationMs``. ``timeout_ms`` makes the server give up waiting (``STOP_TIMEOUT``,
        with the ``survivors`` in ``details``) while it keeps stopping with SIGKILL. The grace period between
        the polite stop and SIGKILL is the instance's ``stopGraceMs`` in the config."""
        return self._command(instance_id, "stop", wait, timeout_ms, timeout)

    def restart(
        self,
        instance_id: str,
        wait: bool = True,
        timeout: Optional[float] = None,
        *,
        args: Optional[Sequence[str]] = None,
        launch_profile: Optional[str] = None,
        wait_ready: bool = True,
        max_attempts: int = 1,
    ) -> Dict[str, Any]:
        """Stops (confirmed dead), then starts. With ``wait`` returns ``{"instance": status}`` once it runs again;
        ``status["lastReport"]`` is the termination report of the old tree.

        ``args`` / ``launch_profile`` as for :meth:`start` (a controller restarts with other flags).
        ``wait_ready`` (with ``wait``): also wait until the status says ``ready`` (a profile's readiness, e.g.
        A1111's models answering), when the server reports readiness at all. ``max_attempts``: a restart whose
        start fails (``START_FAILED``) is tried again, each time stop-then-start, up to this many times in all;
        the last error is raised."""
        if max_attempts < 1:
            raise WardenError("BAD_REQUEST", f"max_attempts must be 1 or more (got {max_attempts!r}).")
        fields = _launch_fields(args, launch_profile)
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                try:
                    reply = self._command(instance_id, "restart", wait, None, timeout, fields)
                except WardenError as error:
                    self._attach_hints(instance_id, error)
                    raise
                if wait and wait_ready:
                    budget = (self.wait_timeout if timeout is None else timeout) - (time.monotonic() - started)
                    reply["instance"] = self.wait_ready(instance_id, max(budget, 1.0))
                return reply
            except WardenError as error:
                if error.code != "START_FAILED" or attempt >= max_attempts:
                    raise

    def reset(self, instance_id: Optional[str] = None) -> Dict[str, Any]:
        """Leaves ``failed`` for one instance (``{"instance": status}``), or, without an id, releases the emergency
        restart hold and resets every failed instance (returns the status)."""
        if instance_id is None:
            return self._request("POST", "/api/reset", {})
        return self._request("POST", f"/api/instances/{_quote(instance_id)}/reset", {})

    def shutdown(self) -> Dict[str, Any]:
        """Asks ``warden run`` to shut down: every tree stopped and confirmed dead, then the process exits.
        Returns ``{"accepted": True, "action": "shutdown"}`` at once; the outcome arrives on :meth:`events`."""
        return self._request("POST", "/api/shutdown", {})

    # ── readiness, logs, and the process-manager calls StableNew makes (docs/STABLENEW.md) ──────────────────

    def wait_ready(self, instance_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits until the instance is ``running`` and, if the server reports ``ready``, ready; returns its status.
        Raises ``TIMEOUT`` with the last state seen, or ``NOT_STARTED`` if it fell back to idle/failed."""
        seconds = self.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + seconds
        while True:
            entry = self.instance(instance_id)
            if _is_ready(entry):
                return entry
            if entry.get("state") in ("idle", "failed"):
                raise WardenError("NOT_STARTED", f'"{instance_id}" is {entry.get("state")}, not starting ({entry.get("lastError") or "no error recorded"}).', None, {"instance": entry})
            if time.monotonic() >= deadline:
                raise WardenError("TIMEOUT", f'"{instance_id}" was not ready within {seconds:g} s (state {entry.get("state")}, detail {entry.get("detail")}).', None, {"instance": entry})
            time.sleep(0.2)

    def ensure_running(self, instance_id: str, timeout: Optional[float] = None, *, args: Optional[Sequence[str]] = None, launch_profile: Optional[str] = None) -> Dict[str, Any]:
        """Returns the instance's status once it runs: does nothing if it already runs (and is ready), resets it
        first if it is ``failed``, starts it otherwise. Idempotent: call it before every generation job."""
        entry = self.instance(instance_id)
        if _is_ready(entry):
            return entry
        if entry.get("state") == "failed":
            self.reset(instance_id)
        if entry.get("state") in ("spawning", "crashed"):
            # Already on its way (a start or a restart after a crash): wait, never start a second tree.
            return self.wait_ready(instance_id, timeout)
        self.start(instance_id, wait=True, timeout=timeout, args=args, launch_profile=launch_profile)
        return self.wait_ready(instance_id, timeout)

    def is_running(self, instance_id: str) -> bool:
        """Whether the instance is ``running`` (its tree is up and its health check passes)."""
        return self.instance(instance_id).get("state") == "running"

    def check_health(self, instance_id: str) -> bool:
        """Whether the instance is running and ready (the server's health checks, not a new probe)."""
        return _is_ready(self.instance(instance_id))

    def pid(self, instance_id: str) -> Optional[int]:
        """The root pid of the instance's tree (the shell parent on Linux), or ``None`` when nothing runs."""
        value = self.instance(instance_id).get("pid")
        return value if isinstance(value, int) else None

    def tail(self, instance_id: str, lines: int = 100) -> List[Dict[str, Any]]:
        """The instance's last ``lines`` output lines (stdout and stderr, across relaunches), oldest first:
        ``[{"at": ISO time, "stream": "stdout" | "stderr", "text": str}]``."""
        if not isinstance(lines, int) or isinstance(lines, bool) or lines < 1 or lines > MAX_TAIL_LINES:  # pyright: ignore[reportUnnecessaryIsInstance] (untyped callers)
            raise WardenError("BAD_REQUEST", f"lines must be an integer from 1 to {MAX_TAIL_LINES} (got {lines!r}).")
        reply = self._request("GET", f"/api/instances/{_quote(instance_id)}/logs?tail={lines}")
        found: Any = reply.get("lines")
        if not isinstance(found, list):
            raise WardenError("BAD_RESPONSE", f"GET /api/instances/{instance_id}/logs answered without a lines list.")
        return [cast(Dict[str, Any], line) for line in cast(List[Any], found) if isinstance(line, dict)]

    def crash_hints(self, instance_id: str) -> List[Dict[str, Any]]:
        """The causes Warden recognised in the last crash's output (``status`` ``lastReport.hints``):
        ``[{"cause": "cuda-oom" | "port-in-use" | "module-not-found" | "torch-no-gpu" | "oom-killed",
        "message": str, "lines": [str]}]``; empty when the last report names none."""
        report = _as_object(self.instance(instance_id).get("lastReport"))
        found: Any = report.get("hints")
        if not isinstance(found, list):
            return []
        return [cast(Dict[str, Any], hint) for hint in cast(List[Any], found) if isinstance(hint, dict)]

    def _attach_hints(self, instance_id: str, error: WardenError) -> None:
        """A failed start carries the crash hints in ``details["hints"]``: the server's, else the last report's."""
        if error.code != "START_FAILED" or isinstance(error.details.get("hints"), list):
            return
        try:
            error.details["hints"] = self.crash_hints(instance_id)
        except WardenError:
            error.details["hints"] = []

    def follow_logs(self, instance_id: str, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> "LogStream":
        """The instance's output as it is written (``GET /api/instances/:id/logs?follow=1``): an iterator of line
        dicts as in :meth:`tail`. ``close()`` ends it from any thread; a dropped connection is reopened."""
        return LogStream(self, instance_id, idle_timeout)

    def events(self, last_event_id: Optional[int] = None, reconnect: bool = True, idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_retries: int = 10) -> "EventStream":
        """The live event stream (``GET /api/events``) as an iterator of ``{"type", "id", "data"}`` dicts.

        The first event of every connection is ``status`` (``data`` is the whole status); then
        ``transition``, ``sample``, ``launch``, ``termination``, ``alert``, ``emergency``, ``bundle``,
        ``reap``, ``stale-reaped``; the last is ``shutdown``, after which the iterator ends.
        ``last_event_id=0`` first replays every event the server still holds. A dropped connection is
        reopened with ``Last-Event-ID`` so nothing is missed (up to ``max_retries`` failures in a row);
        with ``reconnect=False`` the iterator ends instead. ``close()`` (from any thread) ends it too.
        """
        return EventStream(self, last_event_id, reconnect, idle_timeout, max_retries)

    # ── plumbing ────────────────────────────────────────────────────────────────────────────────────

    def _command(
        self, instance_id: str, action: str, wait: bool, timeout_ms: Optional[int], timeout: Optional[float], extra: Optional[Dict[str, Any]] = None
    ) -> Dict[str, Any]:
        body: Dict[str, Any] = {"wait": bool(wait)}
        if extra:
            body.update(extra)
        if timeout_ms is not None:
            body["timeoutMs"] = int(timeout_ms)
        if timeout is None:
            if not wait:
                timeout = self.timeout
            elif timeout_ms is not None:
                timeout = timeout_ms / 1000.0 + self.timeout
            else:
                timeout = self.wait_timeout
        return self._request("POST", f"/api/instances/{_quote(instance_id)}/{action}", body, timeout)

    def _headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        headers = self._headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        _require_loopback(self.url)  # again: url is a public attribute, and a restarted server may name another
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        seconds = self.timeout if timeout is None else timeout
        try:
            with _OPENER.open(request, timeout=seconds) as response:
                return _decode(response.read(), response.status)
        except urllib.error.HTTPError as error:
            raise _error_from_response(error) from None
        except (socket.timeout, TimeoutError) as error:
            raise WardenError("TIMEOUT", f"{method} {path} got no answer within {seconds:g} s; the command may still be carried out.") from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, (socket.timeout, TimeoutError)):
                raise WardenError("TIMEOUT", f"{method} {path} got no answer within {seconds:g} s; the command may still be carried out.") from error
            raise WardenError("UNREACHABLE", f"Cannot reach the Warden control API at {self.url} ({error.reason}); is `warden run` running?") from error
        except (ConnectionError, http.client.HTTPException) as error:
            raise WardenError("UNREACHABLE", f"The connection to {self.url} broke during {method} {path} ({error}); the command may still be carried out.") from error


class EventStream:
    """An iterator over the server's events; see :meth:`WardenClient.events`. Also a context manager."""

    def __init__(self, client: WardenClient, last_event_id: Optional[int], reconnect: bool, idle_timeout: float, max_retries: int, path: str = "/api/events") -> None:
        self._client = client
        self._path = path
        #: The id of the last event received: what a reconnect sends as ``Last-Event-ID``.
        self.last_event_id = last_event_id
        self._reconnect = reconnect
        self._idle_timeout = idle_timeout
        self._max_retries = max_retries
        self._retry_s = 2.0
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._connection: Optional[http.client.HTTPConnection] = None
        self._events = self._run()

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Dict[str, Any]:
        return next(self._events)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ends the stream; safe from any thread, also while another thread waits in ``next()``."""
        self._closed.set()
        with self._lock:
            connection = self._connection
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading the stream
            except OSError:
                pass
        try:
            self._events.close()  # suspended between events: runs its cleanup now
        except ValueError:
            pass  # running in another thread, which now sees the closed socket and ends by itself

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the server said it shut down."""
        return self._closed.is_set()

    def _run(self) -> Generator[Dict[str, Any], None, None]:
        failures = 0
        try:
            while not self._closed.is_set():
                try:
                    for event in self._connect_once():
                        failures = 0
                        yield event
                        if event["type"] == "shutdown":
                            self._closed.set()
                            return
                except WardenError as error:
                    # Refusals (a wrong token, a malformed Last-Event-ID) will not heal by retrying.
                    if self._closed.is_set():
                        return
                    if error.status is not None or not self._reconnect:
                        raise
                    failures += 1
                    if failures > self._max_retries:
                        raise
                else:
                    # The server ended the stream without a shutdown event (it was closed): try again.
                    if self._closed.is_set() or not self._reconnect:
                        return
                    failures += 1
                    if failures > self._max_retries:
                        raise WardenError("UNREACHABLE", f"The event stream at {self._client.url} kept ending ({failures} times in a row).")
                self._follow_restarted_server()
                if self._closed.wait(self._retry_s):
                    return
        finally:
            self._drop_connection()

    def _follow_restarted_server(self) -> None:
        # A new `warden run` on the same state directory numbers its events from 1 again: follow its url, drop the id.
        client = self._client
        if not client._url_from_state_dir:  # pyright: ignore[reportPrivateUsage] (the stream is the client's own helper)
            return
        try:
            url, pid = _read_server_file(client.state_dir)
        except WardenError:
            return
        if pid != client.server_pid:
            client.url, client.server_pid = url.rstrip("/"), pid
            self.last_event_id = None

    def _connect_once(self) -> Iterator[Dict[str, Any]]:
        client = self._client
        parsed = _require_loopback(client.url)
        connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=client.timeout)
        with self._lock:
            self._connection = connection
        if self._closed.is_set():
            return
        headers = {"Authorization": f"Bearer {client.token}", "Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        path = (parsed.path or "") + self._path
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        except (socket.timeout, TimeoutError) as error:
            raise WardenError("TIMEOUT", f"GET {self._path} got no answer within {client.timeout:g} s.") from error
        except (OSError, http.client.HTTPException) as error:
            raise WardenError("UNREACHABLE", f"Cannot open the stream {self._path} at {client.url} ({error}).") from error
        if response.status == 204:
            # The supervisor has shut down: nothing more will come.
            self._closed.set()
            return
        if response.status != 200:
            raise _error_from_response(response)
        if connection.sock is not None:
            # Longer than the server's heartbeat: silence this long means the connection is dead.
            connection.sock.settimeout(self._idle_timeout)
        kind: str = "message"
        data_lines: List[str] = []
        event_id: Optional[str] = None
        while True:
            try:
                raw = response.readline()
            except (socket.timeout, TimeoutError) as error:
                raise WardenError("TIMEOUT", f"The event stream was silent for {self._idle_timeout:g} s (heartbeats missing).") from error
            except (OSError, http.client.HTTPException, ValueError) as error:
                if self._closed.is_set():
                    return
                raise WardenError("UNREACHABLE", f"The event stream broke ({error}).") from error
            if not raw:
                return
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if data_lines:
                    if event_id is not None and event_id.isdigit():
                        self.last_event_id = int(event_id)
                    yield _parse_event(kind, "\n".join(data_lines), self.last_event_id if event_id is not None else None)
                kind, data_lines, event_id = "message", [], None
                continue
            if line.startswith(":"):
                continue  # a comment: the heartbeat
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                kind = value
            elif field == "data":
                data_lines.append(value)
            elif field == "id":
                event_id = value
            elif field == "retry" and value.isdigit():
                self._retry_s = int(value) / 1000.0

    def _drop_connection(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class LogStream:
    """An instance's output lines as they are written; see :meth:`WardenClient.follow_logs`. Also a context manager."""

    def __init__(self, client: WardenClient, instance_id: str, idle_timeout: float) -> None:
        self.instance_id = instance_id
        self._events = EventStream(client, None, True, idle_timeout, 10, f"/api/instances/{_quote(instance_id)}/logs?follow=1")

    def __iter__(self) -> "LogStream":
        return self

    def __next__(self) -> Dict[str, Any]:
        while True:
            event = next(self._events)
            data: Any = event["data"]
            if event["type"] == "line" and isinstance(data, dict):
                return cast(Dict[str, Any], data)

    def __enter__(self) -> "LogStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ends the stream; safe from any thread."""
        self._events.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the server shut down."""
        return self._events.closed


# ── helpers ─────────────────────────────────────────────────────────────────────────────────────────

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The API never redirects; following one would send the token elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxies (the API is on loopback; a proxy would see the token) and no redirects.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _launch_fields(args: Optional[Sequence[str]], launch_profile: Optional[str]) -> Dict[str, Any]:
    """The per-start argv override of a start or restart body, checked before anything is sent."""
    if args is not None and launch_profile is not None:
        raise WardenError("BAD_REQUEST", "Pass args or launch_profile, not both.")
    if args is not None:
        if isinstance(args, (str, bytes)) or not all(isinstance(arg, str) for arg in args):  # pyright: ignore[reportUnnecessaryIsInstance] (untyped callers)
            raise WardenError("BAD_REQUEST", f"args must be a list of strings, such as [\"--medvram\"] (got {args!r}).")
        return {"args": list(args)}
    if launch_profile is not None:
        if not isinstance(launch_profile, str) or not launch_profile:  # pyright: ignore[reportUnnecessaryIsInstance] (untyped callers)
            raise WardenError("BAD_REQUEST", f"launch_profile must be a non-empty string (got {launch_profile!r}).")
        return {"launchProfile": launch_profile}
    return {}


def _require_loopback(url: str) -> urllib.parse.SplitResult:
    """The parsed URL if it names a loopback host; ``NOT_LOOPBACK`` (before any connection) otherwise.
    The token opens the whole control API: it goes to this machine only, never over a network."""
    parsed = urllib.parse.urlsplit(url)
    plain_http = parsed.scheme == "http" and parsed.username is None and parsed.password is None
    if not plain_http or parsed.hostname is None or not _is_loopback_host(parsed.hostname):
        raise WardenError("NOT_LOOPBACK", f"Refusing to send the API token to {url}: only http:// to a literal loopback address (127.0.0.0/8, ::1) is allowed.", None, {"url": url})
    return parsed


def _is_loopback_host(host: str) -> bool:
    """Mirrors `warden status` (isLoopbackUrl in src/server/loopback.ts): a literal 127.0.0.0/8 or ::1 (or IPv4-mapped
    127.x) address. Not "localhost": a hosts file can point a name anywhere."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False  # any other name would need DNS, which can point anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _is_ready(entry: Dict[str, Any]) -> bool:
    """Running, and ready when the server reports readiness (older servers do not: running is ready)."""
    return entry.get("state") == "running" and entry.get("ready") is not False


def _quote(instance_id: str) -> str:
    return urllib.parse.quote(instance_id, safe="")


def _read_server_file(state_dir: str) -> Tuple[str, Optional[int]]:
    path = os.path.join(state_dir, "server.json")
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except FileNotFoundError:
        raise WardenError("NOT_RUNNING", f"No `warden run` is serving {os.path.abspath(state_dir)}: it has no server.json.") from None
    except (OSError, ValueError) as error:
        raise WardenError("NOT_RUNNING", f"Cannot read {path} ({error}).") from None
    fields = _as_object(content)
    url = fields.get("url")
    if not isinstance(url, str):
        raise WardenError("NOT_RUNNING", f"{path} names no url.")
    pid = fields.get("pid")
    return url, pid if isinstance(pid, int) else None


def _read_token(state_dir: str) -> str:
    path = os.path.join(state_dir, "token")
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as error:
        raise WardenError("NO_TOKEN", f"Cannot read the API token {path} ({error.strerror or error}); `warden run` creates it at its first start.") from None
    if not token:
        raise WardenError("NO_TOKEN", f"{path} is empty.")
    return token


def _decode(raw: bytes, status: Optional[int]) -> Dict[str, Any]:
    try:
        value: Any = json.loads(raw.decode("utf-8")) if raw else {}
    except ValueError:
        raise WardenError("BAD_RESPONSE", f"The server answered {status} with something that is not JSON: {raw[:200]!r}", status) from None
    if not isinstance(value, dict):
        raise WardenError("BAD_RESPONSE", f"The server answered {status} with JSON that is not an object.", status)
    return cast(Dict[str, Any], value)


def _error_from_response(response: Any) -> WardenError:
    """Turns an error answer (``{"error": {"code", "message", ...}}``) into a WardenError carrying its code."""
    status = getattr(response, "status", None) or getattr(response, "code", None)
    try:
        raw = response.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    try:
        body: Any = json.loads(raw.decode("utf-8")) if raw else {}
    except ValueError:
        body = {}
    error = _as_object(_as_object(body).get("error"))
    code = error.get("code")
    if isinstance(code, str):
        details = {key: value for key, value in error.items() if key not in ("code", "message")}
        return WardenError(code, str(error.get("message", "")), status, details)
    reason = getattr(response, "reason", "") or ""
    return WardenError("BAD_RESPONSE", f"HTTP {status} {reason} without a Warden error body: {raw[:200]!r}", status)


def _as_object(value: Any) -> Dict[str, Any]:
    """A JSON value as an object: itself if it is one, else empty (the caller then finds no field)."""
    return cast(Dict[str, Any], value) if isinstance(value, dict) else {}


def _parse_event(kind: str, data: str, event_id: Optional[int]) -> Dict[str, Any]:
    try:
        payload: Any = json.loads(data)
    except ValueError:
        payload = data
    return {"type": kind, "id": event_id, "data": payload}


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> bool:
    """Polls ``predicate()`` until it is truthy or ``timeout`` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
