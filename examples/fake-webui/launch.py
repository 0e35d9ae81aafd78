#!/usr/bin/env python3
"""Fake Stable Diffusion WebUI (AUTOMATIC1111-shaped), Python 3 standard library only.

Serves the handful of HTTP endpoints a supervisor uses (ping, progress, options,
server-stop, server-restart), starts sleeping worker processes, and can misbehave on
demand (crash, crash loop, ignore SIGTERM, escape as a daemon, hang, spawn storm).
Run it through webui.sh (Linux/macOS) or webui.bat (Windows) so a shell stays the
parent and relaunches it on restart, like the real thing. See README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCRIPT_DIR = Path(__file__).resolve().parent
WORKER_PY = SCRIPT_DIR / "worker.py"
IS_WINDOWS = os.name == "nt"
STARTED_AT = time.monotonic()


def say(*parts: object, err: bool = False) -> None:
    """Print one line and flush: the supervisor reads these lines as they come."""
    stream = sys.stderr if err else sys.stdout
    print(*parts, file=stream, flush=True)


def state_dir() -> Path:
    env = os.environ.get("FAKE_WEBUI_STATE_DIR")
    return Path(env) if env else SCRIPT_DIR


def restart_file() -> Path:
    return state_dir() / "tmp" / "restart"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="launch.py", description="fake Stable Diffusion WebUI")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 = any free port)")
    p.add_argument("--port-file", default=None, help="write the bound port to this file once listening")
    p.add_argument("--workers", type=int, default=0, help="number of sleeping worker processes to start")
    p.add_argument("--worker-stdio", choices=("inherit", "devnull"), default="inherit",
                   help="inherit (default): workers share our stdout/stderr, so an orphaned worker keeps "
                        "the supervisor's pipes open; devnull: workers get /dev/null")
    p.add_argument("--startup-delay", type=float, default=0.0, metavar="S",
                   help="sleep S seconds before serving (and before the 'Running on' line)")
    p.add_argument("--crash-after", type=float, default=None, metavar="S",
                   help="exit(1) S seconds after launch.py starts, leaving workers behind as orphans")
    p.add_argument("--exit-immediately", action="store_true", help="exit 1 at once, before serving (crash loop)")
    p.add_argument("--ignore-sigterm", action="store_true",
                   help="launch.py, its workers and its daemon ignore SIGTERM; only SIGKILL ends them")
    p.add_argument("--clean-env-worker", action="store_true",
                   help="start workers with an empty environment (subprocess.Popen(env={})): no marker reaches them")
    p.add_argument("--daemon-grandchild", action="store_true",
                   help="start one process that double-forks + setsid away and sleeps forever")
    p.add_argument("--hang-after", type=float, default=None, metavar="S",
                   help="S seconds after serving starts, stay alive but stop answering HTTP")
    p.add_argument("--hang-mode", choices=("block", "close"), default="block",
                   help="block (default): accept connections, never answer (clients time out); "
                        "close: close the listening socket (clients are refused)")
    p.add_argument("--spawn-storm", action="store_true", help="keep adding workers until --storm-max")
    p.add_argument("--storm-interval", type=float, default=0.2, metavar="S", help="seconds between storm workers")
    p.add_argument("--storm-max", type=int, default=50, metavar="N", help="most workers the storm adds (default 50)")
    p.add_argument("--leak-on-restart", action="store_true",
                   help="server-restart exits without stopping workers (they pile up across relaunches)")
    p.add_argument("--verbose", action="store_true", help="log every HTTP request to stderr")
    p.add_argument("--comfyui", action="store_true",
                   help="ComfyUI mode: serve /system_stats and /object_info instead of A1111's routes")
    p.add_argument("--fail-with", choices=sorted(FAILURES), default=None,
                   help="print the real crash message of this failure at startup and exit 1 "
                        "(sigkill: SIGKILL ourselves, as the kernel's OOM killer would)")
    p.add_argument("--autolaunch", action="store_true",
                   help="say 'Opening browser' at startup, unless SD_WEBUI_RESTARTING=1 (A1111's rule)")
    # Accepted and ignored so real A1111 command lines work unchanged.
    for flag in ("--api", "--listen", "--xformers", "--no-half-vae", "--medvram", "--lowvram",
                 "--skip-torch-cuda-test", "--nowebui", "--api-server-stop", "--no-download-sd-model"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    # webui.sh passes its own -f (run as root) on, as A1111's does; A1111's cmd_args accepts it hidden too.
    p.add_argument("-f", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.listen and args.host == "127.0.0.1":
        args.host = "0.0.0.0"
    return args


# The messages PyTorch, uvicorn/Gradio, Python and A1111 print for these failures (copied from real logs).
FAILURES: dict[str, list[str]] = {
    "cuda-oom": [
        "Traceback (most recent call last):",
        '  File "/opt/sd/modules/processing.py", line 732, in process_images',
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total "
        "capacity; 6.81 GiB already allocated; 13.31 MiB free; 7.05 GiB reserved in total by PyTorch) If reserved "
        "memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation.",
    ],
    "port-in-use": [
        "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 7860): address already in use",
        "OSError: Cannot find empty port in range: 7860-7860. You can specify a different port by setting the "
        "GRADIO_SERVER_PORT environment variable or passing the `server_port` parameter to `launch()`.",
    ],
    "module-not-found": [
        "Traceback (most recent call last):",
        '  File "/opt/sd/launch.py", line 48, in <module>',
        "ModuleNotFoundError: No module named 'xformers'",
    ],
    "torch-no-gpu": [
        "Traceback (most recent call last):",
        '  File "/opt/sd/modules/launch_utils.py", line 386, in prepare_environment',
        "RuntimeError: Torch is not able to use GPU; add --skip-torch-cuda-test to COMMANDLINE_ARGS variable to "
        "disable this check",
    ],
    "sigkill": [],
}


# ---------------------------------------------------------------- processes


class Children:
    """The worker processes launch.py started (not the escaped daemon: it is not ours any more)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.RLock()  # re-entrant: the signal handler may run while the main thread holds it
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def spawn(self) -> subprocess.Popen[bytes] | None:
        with self.lock:
            if self.stopping:
                return None
            index = len(self.procs)
            cmd = [sys.executable, "-u", str(WORKER_PY), "--index", str(index)]
            if self.args.ignore_sigterm:
                cmd.append("--ignore-sigterm")
            stdio: dict[str, Any] = {}
            if self.args.worker_stdio == "devnull":
                stdio = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            # env=None: the worker inherits our whole environment (the supervisor's marker too);
            # --clean-env-worker: env={} drops it, as a WebUI extension that sanitises its subprocess env does.
            env: dict[str, str] | None = {} if self.args.clean_env_worker else None
            proc = subprocess.Popen(cmd, close_fds=True, env=env, **stdio)
            self.procs.append(proc)
            say(f"worker {index} started pid {proc.pid}")
            return proc

    def pids(self) -> list[int]:
        with self.lock:
            return [p.pid for p in self.procs if p.poll() is None]

    def stop(self, grace: float = 2.0) -> None:
        """Graceful: SIGTERM every worker, wait up to `grace`, then SIGKILL the rest."""
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        for proc in procs:
            if proc.poll() is None:
                try:
                    proc.terminate()
                except OSError:
                    pass
        deadline = time.monotonic() + grace
        for proc in procs:
            remaining = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(remaining, 0.01))
            except subprocess.TimeoutExpired:
                try:
                    proc.kill()
                    proc.wait(timeout=1.0)
                except (OSError, subprocess.TimeoutExpired):
                    pass


def start_daemon_grandchild(args: argparse.Namespace) -> int:
    """Start a process that escapes our process group and session; return its final pid."""
    cmd = [sys.executable, "-u", str(WORKER_PY), "--daemon"]
    if args.ignore_sigterm:
        cmd.append("--ignore-sigterm")

    if IS_WINDOWS:
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        breakaway = 0x01000000  # CREATE_BREAKAWAY_FROM_JOB
        devnull = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        try:
            proc = subprocess.Popen(cmd, creationflags=flags | breakaway, close_fds=True, **devnull)
        except OSError:  # the job does not allow breakaway
            proc = subprocess.Popen(cmd, creationflags=flags, close_fds=True, **devnull)
        return proc.pid

    # Classic double fork. Done before any thread exists, so fork() is safe.
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first == 0:  # first child
        try:
            os.close(read_fd)
            os.setsid()  # new session and process group: out of reach of killpg(bash)
            if os.fork() != 0:
                os._exit(0)  # first child exits; the grandchild is reparented
            # grandchild: report our pid, detach stdio, become the daemon (pid survives exec)
            os.write(write_fd, str(os.getpid()).encode())
            os.close(write_fd)
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execv(sys.executable, cmd)  # environment kept
        except BaseException:
            pass
        os._exit(1)
    os.close(write_fd)
    data = b""
    while True:
        chunk = os.read(read_fd, 64)
        if not chunk:
            break
        data += chunk
    os.close(read_fd)
    os.waitpid(first, 0)  # reap the intermediate child
    if not data:
        raise RuntimeError("daemon grandchild did not report its pid")
    return int(data.decode())


# ---------------------------------------------------------------- HTTP


PROGRESS = {
    "progress": 0.0,
    "eta_relative": 0.0,
    "state": {
        "skipped": False,
        "interrupted": False,
        "stopping_generation": False,
        "job": "",
        "job_count": 0,
        "job_timestamp": "0",
        "job_no": 0,
        "sampling_step": 0,
        "sampling_steps": 0,
    },
    "current_image": None,
    "textinfo": None,
}

OPTIONS = {
    "sd_model_checkpoint": "fake-model.safetensors [0000000000]",
    "sd_vae": "Automatic",
    "samples_format": "png",
    "CLIP_stop_at_last_layers": 1,
    "fake_webui": True,
}


SD_MODELS = [
    {
        "title": "fake-model.safetensors [0000000000]",
        "model_name": "fake-model",
        "hash": "00000000",
        "sha256": "0" * 64,
        "filename": "/opt/sd/models/Stable-diffusion/fake-model.safetensors",
        "config": None,
    }
]

# ComfyUI's GET routes a supervisor uses (ComfyUI mode, --comfyui).
COMFY_ROUTES: dict[str, Any] = {
    "/system_stats": {
        "system": {"os": os.name, "python_version": sys.version, "embedded_python": False},
        "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 0, "vram_free": 0}],
    },
    "/object_info": {"KSampler": {"input": {}, "output": ["LATENT"], "name": "KSampler", "category": "sampling"}},
}


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler thread never blocks exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: "App") -> None:
        self.app = app
        self.pending_action: str | None = None
        self.action_fired = False
        self.action_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # Runs the handler, then shuts the connection down cleanly; only after that do we
        # stop serving, so the client of server-stop/server-restart always gets its 200.
        super().process_request_thread(request, client_address)
        with self.action_lock:
            fire = self.pending_action is not None and not self.action_fired
            if fire:
                self.action_fired = True
        if fire:
            self.shutdown()  # we are a handler thread, not the serve_forever thread: allowed


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "fake-webui/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        if self.server.app.args.verbose:
            super().log_message(format, *args)

    def _maybe_hang(self) -> None:
        if self.server.app.hung.is_set():
            threading.Event().wait()  # never returns; the thread is a daemon

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _drain_body(self) -> None:
        # Unread request bytes would make close() send RST and the client could lose our reply.
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)

    def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
        self._maybe_hang()
        path = self.path.split("?", 1)[0]
        app = self.server.app
        if app.args.comfyui and path in COMFY_ROUTES:
            self._send(200, COMFY_ROUTES[path])
        elif app.args.comfyui and path != "/fake/info":
            self._send(404, {"detail": "Not Found"})
        elif path == "/internal/ping":
            self._send(200, {})
        elif path == "/sdapi/v1/sd-models":
            self._send(200, SD_MODELS)
        elif path == "/sdapi/v1/progress":
            self._send(200, PROGRESS)
        elif path == "/sdapi/v1/options":
            self._send(200, OPTIONS)
        elif path == "/fake/info":
            self._send(200, app.info())
        elif path in ("/sdapi/v1/server-stop", "/sdapi/v1/server-restart", "/sdapi/v1/server-kill"):
            self._send(405, {"detail": "Method Not Allowed"})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802
        self._maybe_hang()
        self._drain_body()
        path = self.path.split("?", 1)[0]
        if path == "/sdapi/v1/server-stop":
            self.server.pending_action = "stop"
            self._send(200, "Stopping.", "text/plain")
        elif path == "/sdapi/v1/server-restart":
            rf = restart_file()
            rf.parent.mkdir(parents=True, exist_ok=True)
            rf.touch()
            self.server.pending_action = "restart"
            self._send(200, "Restarting.", "text/plain")
        elif path == "/sdapi/v1/server-kill":
            # A1111: os._exit(0) on the spot; workers are left behind.
            self._send(200, "Killing.", "text/plain")
            say("server-kill: exiting now", err=True)
            os._exit(0)
        elif path in ("/internal/ping", "/sdapi/v1/progress", "/sdapi/v1/options", "/fake/info"):
            self._send(405, {"detail": "Method Not Allowed"})
        else:
            self._send(404, {"detail": "Not Found"})


# ---------------------------------------------------------------- app


class App:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children = Children(args)
        self.hung = threading.Event()
        self.daemon_pid: int | None = None
        self.server: Server | None = None

    def info(self) -> dict[str, Any]:
        port = self.server.server_address[1] if self.server else None
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "port": port,
            "workers": self.children.pids(),
            "daemon": self.daemon_pid,
            "hung": self.hung.is_set(),
            "uptime": round(time.monotonic() - STARTED_AT, 3),
            "argv": sys.argv[1:],
            "restarting": os.environ.get("SD_WEBUI_RESTARTING"),
            "warden_port": os.environ.get("WARDEN_PORT"),
        }

    def exit_now(self, code: int, stop_workers: bool) -> None:
        if stop_workers:
            self.children.stop()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def install_signals(self) -> None:
        if self.args.ignore_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:
            def on_term(signum: int, _frame: object) -> None:
                say(f"received signal {signum}, stopping workers and exiting", err=True)
                self.exit_now(0, stop_workers=True)

            signal.signal(signal.SIGTERM, on_term)
            if hasattr(signal, "SIGINT"):
                signal.signal(signal.SIGINT, on_term)

    def start_crash_timer(self) -> None:
        if self.args.crash_after is None:
            return

        def crash() -> None:
            say("Traceback (most recent call last):\nRuntimeError: fake crash (--crash-after)", err=True)
            os._exit(1)  # no cleanup: the workers are orphaned, like a real crash

        delay = max(0.0, self.args.crash_after - (time.monotonic() - STARTED_AT))
        t = threading.Timer(delay, crash)
        t.daemon = True
        t.start()

    def start_hang_timer(self) -> None:
        if self.args.hang_after is None:
            return

        def hang() -> None:
            say(f"hanging now (--hang-after, mode {self.args.hang_mode})", err=True)
            self.hung.set()
            if self.args.hang_mode == "close" and self.server is not None:
                self.server.pending_action = "hang"
                self.server.shutdown()

        t = threading.Timer(max(0.0, self.args.hang_after), hang)
        t.daemon = True
        t.start()

    def start_storm(self) -> None:
        if not self.args.spawn_storm:
            return

        def storm() -> None:
            for _ in range(max(0, self.args.storm_max)):
                time.sleep(max(0.0, self.args.storm_interval))
                if self.children.spawn() is None:
                    return

        threading.Thread(target=storm, name="spawn-storm", daemon=True).start()

    def run(self, argv: list[str]) -> int:
        args = self.args
        say(f"Python {sys.version.split()[0]} (fake-webui launch.py pid {os.getpid()}, ppid {os.getppid()})")
        say(f"Launching Web UI with arguments: {' '.join(shlex.quote(a) for a in argv)}")
        self.install_signals()

        if args.exit_immediately:
            say("RuntimeError: fake startup failure (--exit-immediately)", err=True)
            return 1

        if args.fail_with == "sigkill":
            say("Loading weights (--fail-with sigkill: SIGKILL from ourselves, like the OOM killer)")
            os.kill(os.getpid(), signal.SIGKILL)
        if args.fail_with is not None:
            for line in FAILURES[args.fail_with]:
                say(line, err=True)
            return 1

        if args.daemon_grandchild:  # first, while no thread exists (it forks)
            self.daemon_pid = start_daemon_grandchild(args)
            say(f"daemon started pid {self.daemon_pid}")

        self.start_crash_timer()  # counts from process start: may fire during startup

        for _ in range(max(0, args.workers)):
            self.children.spawn()

        if args.startup_delay > 0:
            say(f"Loading fake model for {args.startup_delay}s (--startup-delay)")
            time.sleep(args.startup_delay)

        self.server = Server((args.host, args.port), self)
        port = self.server.server_address[1]
        if args.port_file:
            pf = Path(args.port_file)
            pf.parent.mkdir(parents=True, exist_ok=True)
            tmp = pf.with_name(pf.name + f".{os.getpid()}.tmp")
            tmp.write_text(f"{port}\n")
            os.replace(tmp, pf)  # readers never see a half-written file

        if args.comfyui:
            say(f"To see the GUI go to: http://{args.host}:{port}")
        else:
            say(f"Running on local URL:  http://{args.host}:{port}")
            say("")
            say("To create a public link, set `share=True` in `launch()`.")
        if args.autolaunch and os.environ.get("SD_WEBUI_RESTARTING") != "1":
            say(f"Opening browser (--autolaunch): http://{args.host}:{port}")
        say(f"Startup time: {time.monotonic() - STARTED_AT:.1f}s")

        self.start_hang_timer()
        self.start_storm()

        self.server.serve_forever(poll_interval=0.2)
        action = self.server.pending_action
        self.server.server_close()

        if action == "hang":
            # --hang-mode close: the socket is gone but the process lives on.
            while True:
                time.sleep(3600)
        if action == "restart":
            say("Restarting: tmp/restart written, exiting 0 for the wrapper to relaunch")
            self.exit_now(0, stop_workers=not args.leak_on_restart)
        say("Stopping: workers first, then exit 0")
        self.exit_now(0, stop_workers=True)
        return 0


def consume_restart_file() -> None:
    """Like A1111's prepare_environment: a relaunch removes tmp/restart (so the wrapper stops looping after this
    run unless asked again) and marks itself SD_WEBUI_RESTARTING=1 (no second browser tab on --autolaunch)."""
    try:
        restart_file().unlink()
        os.environ.setdefault("SD_WEBUI_RESTARTING", "1")
    except OSError:
        pass


def main() -> int:
    consume_restart_file()  # first, before anything can fail: a leftover file must never make the wrapper loop
    argv = sys.argv[1:]
    # Like A1111's launch_utils: COMMANDLINE_ARGS (set by webui-user.sh/.bat) is appended.
    extra = os.environ.get("COMMANDLINE_ARGS", "")
    if extra.strip():
        argv = argv + shlex.split(extra, posix=not IS_WINDOWS)
    args = parse_args(argv)
    return App(args).run(argv)


if __name__ == "__main__":
    sys.exit(main())
