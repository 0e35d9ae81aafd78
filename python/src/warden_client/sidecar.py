"""``Sidecar``: a ``warden run`` that this Python process starts, owns, and takes down with it.

    from warden_client import Sidecar

    with Sidecar("warden.config.json") as warden:       # starts `warden run`, waits until its API answers
        warden.client.start("webui")                      # the same WardenClient as always
        ...
    # leaving the block: POST /api/shutdown, every tree confirmed dead, `warden run` exited

The sidecar is started with ``--owner-pid <this pid>`` and ``--lifeline`` (its stdin is a pipe from us): if this
process exits, crashes or is SIGKILLed, the pipe closes and ``warden run`` stops every instance (confirmed dead)
and exits. The WebUI never outlives its controller.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Union, cast

from .client import WardenClient, WardenError

__all__ = ["Sidecar", "find_warden", "state_dir_of"]

#: Seconds `warden run` may take to serve its API (node start, reaping what an earlier run left).
DEFAULT_STARTUP_TIMEOUT = 60.0
#: Seconds a `stop()` waits for `warden run` to exit after POST /api/shutdown (every tree stopped, confirmed).
DEFAULT_STOP_TIMEOUT = 120.0

Command = Union[str, Sequence[str]]


def _as_command(value: Command) -> List[str]:
    """A command given as a list, an existing path (spaces allowed), or a command line (``node cli.js``)."""
    if not isinstance(value, str):
        parts = [str(part) for part in value]
        if not parts:
            raise WardenError("WARDEN_NOT_FOUND", "The warden command is an empty list.")
        return parts
    if os.path.exists(value):
        return [value]
    return shlex.split(value, posix=os.name != "nt")


def find_warden(warden: Optional[Command] = None, project_dir: Optional[str] = None) -> List[str]:
    """The command that runs ``warden``: ``warden`` (explicit) → ``$WARDEN_BIN`` → ``<project_dir>/node_modules/.bin/warden``
    → ``npx --no-install warden`` in ``project_dir`` → ``warden`` on ``PATH``. Raises ``WARDEN_NOT_FOUND`` naming
    everything it tried."""
    tried: List[str] = []
    if warden is not None:
        return _as_command(warden)
    tried.append("the warden= argument (not given)")
    env = os.environ.get("WARDEN_BIN", "").strip()
    if env:
        return _as_command(env)
    tried.append("$WARDEN_BIN (unset)")
    if project_dir is not None:
        bin_dir = os.path.join(os.path.abspath(project_dir), "node_modules", ".bin")
        names = ("warden.cmd", "warden.exe", "warden") if os.name == "nt" else ("warden",)
        for name in names:
            candidate = os.path.join(bin_dir, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return [candidate]
        tried.append(f"{os.path.join(bin_dir, 'warden')} (missing)")
        npx = shutil.which("npx")
        if npx is not None and os.path.isfile(os.path.join(project_dir, "package.json")):
            return [npx, "--no-install", "warden"]
        tried.append("npx --no-install warden (" + ("no package.json in the project dir" if npx else "npx is not on PATH") + ")")
    else:
        tried.append("<project_dir>/node_modules/.bin/warden and npx (no project_dir given)")
    on_path = shutil.which("warden")
    if on_path is not None:
        return [on_path]
    tried.append("warden on PATH (not found)")
    raise WardenError(
        "WARDEN_NOT_FOUND",
        "Cannot find the warden executable; tried: " + "; ".join(tried) + ". Pass warden=..., set WARDEN_BIN, or give "
        "project_dir= of a project with `npm install webui-warden`.",
    )


def state_dir_of(config_path: str) -> str:
    """The absolute state directory a config file names (``stateDir``, default ``.warden``, relative to the file)."""
    try:
        with open(config_path, encoding="utf-8") as handle:
            content: Any = json.load(handle)
    except OSError as error:
        raise WardenError("BAD_CONFIG", f"Cannot read the config {config_path} ({error.strerror or error}).") from None
    except ValueError as error:
        raise WardenError("BAD_CONFIG", f"The config {config_path} is not JSON ({error}).") from None
    state_dir: Any = cast(Dict[str, Any], content).get("stateDir", ".warden") if isinstance(content, dict) else None
    if not isinstance(state_dir, str) or not state_dir:
        raise WardenError("BAD_CONFIG", f"stateDir in {config_path} must be a non-empty string (got {state_dir!r}).")
    return os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(config_path)), state_dir))


class Sidecar:
    """Starts ``warden run --config <config> --owner-pid <pid> --lifeline`` and finds its URL and token.

    ``warden``: the command (list, path, or command line); default :func:`find_warden` with ``project_dir``.
    ``owner_pid``: whose death ends the run (default this process); ``lifeline``: also hand it a stdin pipe whose
    end means the same (default True). ``log_file``: where its stdout/stderr go (default ``<stateDir>/sidecar.log``;
    a pipe could fill up, or break when we die before it has stopped the trees). ``extra_args`` are added to the
    command line (``["--no-sentinel"]``, ``["--json"]``). ``env`` adds variables to its environment.
    """

    def __init__(
        self,
        config: str,
        *,
        warden: Optional[Command] = None,
        project_dir: Optional[str] = None,
        owner_pid: Optional[int] = None,
        lifeline: bool = True,
        log_file: Optional[str] = None,
        extra_args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        timeout: float = 10.0,
        wait_timeout: float = 600.0,
    ) -> None:
        self.config = os.path.abspath(config)
        self.state_dir = state_dir_of(self.config)
        self.command = find_warden(warden, project_dir) + ["run", "--config", self.config]
        self.owner_pid = os.getpid() if owner_pid is None else owner_pid
        if self.owner_pid > 0:
            self.command += ["--owner-pid", str(self.owner_pid)]
        if lifeline:
            self.command.append("--lifeline")
        self.command += list(extra_args)
        self.lifeline = lifeline
        self.project_dir = project_dir
        self.log_file = log_file or os.path.join(self.state_dir, "sidecar.log")
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self._timeout = timeout
        self._wait_timeout = wait_timeout
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._client: Optional[WardenClient] = None
        self._log: Optional[IO[bytes]] = None

    # ── lifecycle ───────────────────────────────────────────────────────────────────────────────────

    def start(self) -> "Sidecar":
        """Starts ``warden run`` and returns once its API answers (``server.json`` and ``token`` written by this
        run, ``GET /api/status`` 200). Raises ``SIDECAR_EXITED`` with its last output if it ends first, ``TIMEOUT``
        (after stopping it) if it does not serve within ``startup_timeout``."""
        if self.process is not None:
            raise WardenError("ALREADY_STARTED", f"This sidecar already started warden run (pid {self.process.pid}).")
        os.makedirs(self.state_dir, exist_ok=True)
        stale = _server_pid(self.state_dir)
        self._log = open(self.log_file, "ab")
        log_start = self._log.tell()
        environment = {**os.environ, "NO_COLOR": "1", **self.env}
        # PROCESS LIFECYCLE: creates a subprocess
        # Parent tracking: self.process (Popen handle); it watches us back through --owner-pid and the stdin lifeline.
        # Cleanup handled by: stop() (POST /api/shutdown, wait; SIGTERM then SIGKILL through this handle) and, if we
        #   die first, by warden run itself: the closed lifeline / dead owner pid stop every tree and end it.
        # Known risks: `npx warden` puts npm between us and node (self.process is npx; node gets the same stdin pipe
        #   and owner pid, so the lease holds, but a SIGKILL through this handle reaches npx only).
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE if self.lifeline else subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.project_dir or os.path.dirname(self.config),
            env=environment,
        )
        try:
            self._client = self._wait_until_serving(stale, log_start)
        except BaseException:
            self._abort()
            raise
        return self

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> Optional[int]:
        """Shuts ``warden run`` down (every tree stopped and confirmed dead) and waits for it to exit; returns its
        exit code (0: everything confirmed dead, 1: something survived and its log says what). If the API does not
        answer, it is sent SIGTERM (the same shutdown), SIGKILL as a last resort. ``None`` if it was never started."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None and self._client is not None:
            try:
                self._client.shutdown()
            except WardenError:
                pass  # not answering: the signal below runs the same shutdown
        code = self._end_process(timeout)
        self._close_log()
        return code

    def __enter__(self) -> "Sidecar":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ── what a controller uses ──────────────────────────────────────────────────────────────────────

    @property
    def client(self) -> WardenClient:
        """The client for this run's API (``NOT_STARTED`` before :meth:`start`)."""
        if self._client is None:
            raise WardenError("NOT_STARTED", "Sidecar.start() has not been called (or failed).")
        return self._client

    @property
    def url(self) -> str:
        """The control API's URL, e.g. ``http://127.0.0.1:7870``."""
        return self.client.url

    @property
    def token(self) -> str:
        """The bearer token of the control API."""
        return self.client.token

    @property
    def pid(self) -> Optional[int]:
        """The pid of the process this sidecar started (``warden run``, or ``npx`` in front of it)."""
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        """Whether the ``warden run`` process is still alive."""
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """What ``warden run`` has written to its log file so far (its startup lines, events, the shutdown)."""
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    # ── plumbing ────────────────────────────────────────────────────────────────────────────────────

    def _wait_until_serving(self, stale_pid: Optional[int], log_start: int) -> WardenClient:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "server.json not written yet"
        while True:
            code = self.process.poll()
            if code is not None:
                raise WardenError(
                    "SIDECAR_EXITED",
                    f"warden run exited with code {code} before serving its API: {self._log_since(log_start)[-2000:].strip() or '(no output)'}",
                    None,
                    {"exitCode": code, "command": self.command, "logFile": self.log_file},
                )
            pid = _server_pid(self.state_dir)
            if pid is not None and pid != stale_pid and _descends_from(pid, self.process.pid):
                try:
                    client = WardenClient(state_dir=self.state_dir, timeout=self._timeout, wait_timeout=self._wait_timeout)
                    client.status()
                    return client
                except WardenError as error:
                    last_error = str(error)
            if time.monotonic() >= deadline:
                raise WardenError(
                    "TIMEOUT",
                    f"warden run did not serve its API within {self.startup_timeout:g} s ({last_error}); it was stopped. Output: "
                    f"{self._log_since(log_start)[-2000:].strip() or '(none)'}",
                )
            time.sleep(0.1)

    def _log_since(self, offset: int) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _end_process(self, timeout: float) -> Optional[int]:
        process = self.process
        if process is None:
            return None
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        process.terminate()  # SIGTERM: warden run's own shutdown (confirmed), like POST /api/shutdown
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # its sentinel still kills the trees
            return process.wait()
        finally:
            if process.stdin is not None:
                process.stdin.close()

    def _abort(self) -> None:
        """A start that failed or was interrupted: SIGTERM (its confirmed shutdown) at once, SIGKILL after 10 s."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self.process is not None and self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def _server_pid(state_dir: str) -> Optional[int]:
    try:
        with open(os.path.join(state_dir, "server.json"), encoding="utf-8") as handle:
            content: Any = json.load(handle)
    except (OSError, ValueError):
        return None
    pid: Any = cast(Dict[str, Any], content).get("pid") if isinstance(content, dict) else None
    return pid if isinstance(pid, int) else None


def _descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is ``ancestor`` or below it (``npx`` puts a process in between). Without /proc: only equality
    can be checked, so any fresh server pid is accepted."""
    if pid == ancestor:
        return True
    if not os.path.isdir("/proc/self"):
        return True
    current = pid
    for _ in range(16):
        parent = _ppid(current)
        if parent is None or parent <= 1:
            return False
        if parent == ancestor:
            return True
        current = parent
    return False


def _ppid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None

