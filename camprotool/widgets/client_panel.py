"""``ClientPanel``: talk the protocol from a notebook, with live log, cameras and alarms.

::

    from camprotool.widgets import ClientPanel, demo_server
    panel = ClientPanel.for_server(demo_server())
    panel          # the cell shows the panel

The panel drives a :class:`camprotool.net.Client`. Every request runs on the
panel's worker thread (see :mod:`camprotool.widgets._common`), so the kernel
never waits for the network; action buttons are disabled while one runs
(Logout stays available). What the client sends and receives reaches the panel
through the client's message log listener, on the client's loop thread: it
updates plain state, and debounced redraws update the widgets. The log and
the grid are rendered by :mod:`camprotool.analysis.render`, the HTML path the
report and the explorer use.

What the server says about cameras (status pushes and answers, upload and
download answers, alarms) goes to a :class:`camprotool.protocol.status.StatusModel`,
the model ``Capture.status`` and ``Capture.alarms`` are held to, so the grid
and a capture of the same conversation agree; the grid and the alarm plot
are drawn from its camera states and history.

Sync progress comes from the data-connection answers as they are logged
(``UploadSucess``/``UploadFail``: ``synced`` of ``total``; ``DownloadSucess``:
``current`` of ``total``), so the bar moves during the transfer, not after it.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from camprotool.analysis import render
from camprotool.analysis.render import Cell, Row, Table
from camprotool.net import Client, NotConnected
from camprotool.net.table import mask_params
from camprotool.protocol import Dialect, Message
from camprotool.protocol.catalogue import COMMANDS, Direction
from camprotool.protocol.status import Alarm, CameraState, StatusModel
from camprotool.widgets._common import (
    ERROR,
    INFO,
    OK,
    Debouncer,
    Worker,
    close_all,
    describe_error,
    show_figure,
    status_html,
    text_output,
)
from camprotool.widgets._ipywidgets import widgets  # names the extra if missing
from camprotool.widgets.commands import CommandForm, client_commands

if TYPE_CHECKING:
    from camprotool.net import EmulatorServer
    from camprotool.net.recording import LoggedMessage

log = logging.getLogger("camprotool.widgets.client_panel")

COLORS = {"c2s": "#1f4e9c", "s2c": "#2b7a2b", "push": "#b35900"}
ARROWS = {"c2s": "→", "s2c": "←", "push": "⇐ push"}
STATE_COLORS = {True: "#2ca02c", False: "#d62728", None: "#8a8a8a"}
STATE_NAMES = {True: "online", False: "offline", None: "unknown"}
DIALECTS = ["line", "line:gbk", "lp32le", "lp32le:gbk", "lp32be", "lp32be:gbk"]
ALL, UNKNOWN = "", "?"
_CAMERA_LINE = re.compile(r"[\s,;:|]+")


class LogRow(NamedTuple):
    ts_ns: int
    conn: int
    channel: str
    direction: str
    kind: str  # c2s, s2c or push
    command: str
    params: str
    error: str | None


def parse_cameras(text: str) -> list[tuple[str, str]]:
    """``id password`` per line (also ``id:password``, ``id,password``); blank lines skipped."""
    cams = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = [p for p in _CAMERA_LINE.split(line.strip()) if p]
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"local cameras, line {n}: expected 'id password', got {line!r}")
        cams.append((parts[0], parts[1]))
    return cams


class ClientPanel:
    """An interactive protocol client for Jupyter.

    ``timeout`` bounds every wait for an answer (seconds); ``tz`` is the zone
    times are shown in (None: the machine's); ``reveal_passwords`` shows
    passwords in the log; ``log_limit`` rows of the log are shown (newest
    first); other keyword arguments go to :class:`camprotool.net.Client`
    (``heartbeat_interval``, ``record``, ...).

    Sub-widgets are attributes (``connect_button``, ``login_button``,
    ``status``, ``command_picker``, ``forms``, ``send_button``, ``log``,
    ``grid``, ``alarm_plot``, ``sync_button``, ``progress``, ...); the whole
    panel is :attr:`widget`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, dialect: str | Dialect = "line",
                 user: str = "demo", password: str = "demo", *, timeout: float = 10.0,
                 tz: Any = None, reveal_passwords: bool = False, log_limit: int = 200,
                 **client_options: Any) -> None:
        from camprotool.analysis.plots import resolve_tz

        self.timeout = timeout
        self.zone = resolve_tz(tz)
        self.tz = tz
        self.reveal_passwords = reveal_passwords
        self.log_limit = log_limit
        self.client_options = client_options
        self.client: Client | None = None
        self._client_key: tuple | None = None
        self._credentials: tuple[str, str] | None = None
        self._expect_open = False
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._rows: deque[LogRow] = deque(maxlen=5000)
        #: every camera's state and the latest observations and alarms (read under _lock)
        self.status_model = StatusModel(max_observations=50_000, max_alarms=10_000)
        self._progress: dict[str, Any] = {"kind": "", "current": 0, "total": 0, "style": "",
                                          "text": ""}
        self.alarm_figure: Any = None
        self.alarm_draws = 0
        #: the status line as plain text, and the last error shown there (None after a success)
        self.status_text = "ready"
        self.last_error: str | None = None
        self._worker = Worker("camprotool-panel")
        self._refresh = Debouncer(0.08, self._render, "panel refresh")
        self._replot = Debouncer(0.4, self._draw_alarms, "alarm plot")
        self._build(host, port, Dialect.parse(dialect).name, user, password)

    @classmethod
    def for_server(cls, server: EmulatorServer, **kwargs: Any) -> ClientPanel:
        """A panel pointed at a running :class:`~camprotool.net.EmulatorServer`."""
        host, port = server.address
        kwargs.setdefault("dialect", server.dialect.name)
        return cls(host, port, **kwargs)

    # ------------------------------------------------------------------ widgets
    def _build(self, host: str, port: int, dialect: str, user: str, password: str) -> None:
        W = widgets
        narrow = W.Layout(width="190px")
        self.host = W.Text(value=host, description="host", layout=W.Layout(width="220px"))
        self.port = W.IntText(value=port, description="port", layout=W.Layout(width="150px"))
        self.dialect = W.Combobox(value=dialect, options=DIALECTS, description="dialect",
                                  ensure_option=False, layout=W.Layout(width="200px"))
        self.user = W.Text(value=user, description="user", layout=narrow)
        self.password = W.Password(value=password, description="password", layout=narrow)
        self.connect_button = W.Button(description="Connect", icon="plug",
                                       tooltip="open the main connection")
        self.login_button = W.Button(description="Login", icon="sign-in", button_style="primary",
                                     tooltip="log in (connecting first if needed)")
        self.logout_button = W.Button(description="Logout", icon="sign-out",
                                      tooltip="close the connection (the protocol has no logout)")
        self.state = W.HTML(status_html("not connected", INFO, "●"))
        self.status = W.HTML(status_html("ready", INFO))

        # command picker, generated from the catalogue
        self.forms: dict[str, CommandForm] = {s.name: CommandForm(s) for s in client_commands()}
        self.command_picker = W.Dropdown(options=list(self.forms), description="command")
        self.form_box = W.Box()
        self.as_raw = W.Checkbox(value=False, indent=False,
                                 description="send as typed on the main connection (no client "
                                             "logic, no wait for the answer)")
        self.send_button = W.Button(description="Send", icon="paper-plane")
        self.raw_command = W.Combobox(
            options=[s.full_name for s in COMMANDS], ensure_option=False, description="raw",
            placeholder="command name (full or short)", layout=W.Layout(width="460px"))
        self.raw_params = W.Text(description="params", placeholder="parameter string",
                                 layout=W.Layout(width="460px"))
        self.raw_send_button = W.Button(description="Send raw", icon="terminal")
        self._prefill_credentials()
        self._show_form()

        # sync
        self.local_cameras = W.Textarea(
            placeholder="local cameras, 'id password' per line; empty: download the account's",
            layout=W.Layout(width="460px", height="80px"))
        self.sync_button = W.Button(description="Sync", icon="refresh", button_style="info",
                                    tooltip="upload if the local list is longer than the "
                                            "server's count, download if shorter")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="sync")
        self.progress_label = W.HTML("")

        # cameras, alarms, log
        self.grid = W.HTML(self._grid_html([]))
        self.alarm_plot = W.Output(layout=W.Layout(min_height="60px"))
        self.alarm_plot.outputs = (text_output("no alarms yet"),)
        self.sequence_button = W.Button(description="Draw", icon="exchange",
                                        tooltip="the conversation so far, time going down")
        self.sequence_plot = W.Output(layout=W.Layout(min_height="40px"))
        self.sequence_plot.outputs = (text_output(
            "press Draw: the latest messages as a sequence diagram (arrows spaced by time, "
            "one lane per data connection)"),)
        self.sequence_figure: Any = None
        self.log_filter = W.Dropdown(
            options=[("all commands", ALL), *[(s.name, s.name) for s in COMMANDS],
                     ("unknown commands", UNKNOWN)], description="show")
        self.clear_log_button = W.Button(description="Clear log", icon="trash")
        self.log = W.HTML(self._log_html([]))

        self.connect_button.on_click(lambda _: self.connect())
        self.login_button.on_click(lambda _: self.login())
        self.logout_button.on_click(lambda _: self.logout())
        self.send_button.on_click(lambda _: self.send())
        self.raw_send_button.on_click(lambda _: self.send_raw())
        self.sync_button.on_click(lambda _: self.sync())
        self.sequence_button.on_click(lambda _: self.draw_sequence())
        self.clear_log_button.on_click(lambda _: self.clear_log())
        self.command_picker.observe(lambda _: self._show_form(), names="value")
        self.log_filter.observe(lambda _: self._refresh.trigger(), names="value")

        self._actions = [self.connect_button, self.login_button, self.send_button,
                         self.raw_send_button, self.sync_button]
        header = W.HTML
        commands = W.VBox([
            W.HBox([self.command_picker, self.send_button]), self.form_box, self.as_raw,
            W.HBox([self.raw_command, self.raw_send_button]), self.raw_params])
        sync = W.VBox([self.local_cameras, W.HBox([self.sync_button, self.progress,
                                                    self.progress_label])])
        sequence = W.VBox([self.sequence_button, self.sequence_plot])
        tabs = W.Tab(children=[commands, sync, sequence])
        tabs.titles = ("Commands", "Sync", "Sequence")
        self.widget = W.VBox([
            W.HBox([self.host, self.port, self.dialect]),
            W.HBox([self.user, self.password, self.connect_button, self.login_button,
                    self.logout_button]),
            W.HBox([self.state, self.status]),
            tabs,
            header("<b>Cameras</b>"), self.grid,
            header("<b>Alarms</b>"), self.alarm_plot,
            W.HBox([header("<b>Messages</b>"), self.log_filter, self.clear_log_button]),
            self.log,
        ])
        self.tabs = tabs

    def _prefill_credentials(self) -> None:
        for form in self.forms.values():
            for name, source in (("user", self.user), ("password", self.password)):
                if name in form.inputs and not form.inputs[name].value:
                    form.inputs[name].value = source.value

    def _show_form(self) -> None:
        form = self.forms.get(self.command_picker.value)
        self.form_box.children = (form.box,) if form is not None else ()

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"<ClientPanel {self.host.value}:{self.port.value} {self._state_text()}>"

    # ------------------------------------------------------------------ status
    def _set_status(self, text: str, color: str = INFO, icon: str = "") -> None:
        self.status_text = text
        self.status.value = status_html(text, color, icon)

    def _ok(self, text: str) -> None:
        self.last_error = None
        self._set_status(text, OK, "✔")

    def _error(self, text: str) -> None:
        self.last_error = text
        self._set_status(text, ERROR, "✖")

    def _set_busy(self, busy: bool) -> None:
        for button in self._actions:
            button.disabled = busy

    @property
    def busy(self) -> bool:
        """Whether a request (login, send, sync, ...) is running."""
        return self._worker.busy

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running request is done (for scripts and tests)."""
        return self._worker.wait(timeout)

    def _start(self, label: str, job: Callable[[], str | None]) -> None:
        if self._closed.is_set():
            self._error("the panel is closed")
            return
        self._set_busy(True)
        if self._worker.submit(label, lambda: self._job(label, job)) is None:
            self._error(f"{label}: wait, {self._worker.label} is still running")

    def _job(self, label: str, job: Callable[[], str | None]) -> None:
        self.last_error = None
        self._set_status(f"{label}…", INFO, "⏳")
        try:
            message = job()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            log.debug("%s failed", label, exc_info=True)
            self._error(f"{label} failed: {describe_error(exc)}")
            if label == "sync":
                with self._lock:
                    self._progress.update(style="danger", text="sync failed")
        else:
            if message:
                self._ok(message)
        finally:
            self._set_busy(False)
            self._refresh.trigger()

    # ------------------------------------------------------------------ connection
    def _key(self) -> tuple[str, int, str]:
        host = self.host.value.strip()
        if not host:
            raise ValueError("enter the server's host")
        return host, int(self.port.value), Dialect.parse(self.dialect.value or "line").name

    def _ensure_client(self) -> Client:
        """The connected client for the address in the fields (a new one if they changed)."""
        key = self._key()
        client = self.client
        if client is not None and self._client_key == key and client.connected:
            return client
        self._drop_client()
        options = {"timeout": self.timeout, **self.client_options}
        client = Client(key[0], key[1], dialect=key[2], **options)
        client.log.on_message(functools.partial(self._on_logged, client))
        try:
            client.connect()
        except BaseException:
            client.close()
            raise
        self.client, self._client_key = client, key
        self._expect_open = True
        threading.Thread(target=self._watch, args=(client,), daemon=True,
                         name="camprotool-panel-watch").start()
        self._refresh.trigger()
        return client

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        self._expect_open = False
        self._credentials = None
        if client is not None:
            try:
                client.close()
            except Exception:
                log.debug("closing the client failed", exc_info=True)

    def _watch(self, client: Client) -> None:
        """Notice a connection the server closed (the client has no callback for it)."""
        while not self._closed.wait(0.2):
            if self.client is not client:
                return
            if not client.connected:
                if self._expect_open and self.client is client:
                    self._expect_open = False
                    self._credentials = None
                    self._error("connection lost: the server closed the main connection")
                    self._refresh.trigger()
                return

    def connect(self) -> None:
        """Open the main connection (the Connect button)."""
        def job() -> str:
            already = self.client is not None and self.client.connected and \
                self._client_key == self._key()
            client = self._ensure_client()
            where = f"{client.host}:{client.port}"
            return f"already connected to {where}" if already else \
                f"connected to {where} ({self._client_key[2]})"  # type: ignore[index]

        self._start("connect", job)

    def login(self, user: str | None = None, password: str | None = None) -> None:
        """Log in with the fields' (or the given) credentials (the Login button)."""
        user = self.user.value if user is None else user
        password = self.password.value if password is None else password
        self._start("login", lambda: self._login(user, password))

    def _login(self, user: str, password: str) -> str:
        client = self._ensure_client()
        reply = client.login(user, password)
        self._credentials = (user, password)
        self._refresh.trigger()
        count = getattr(reply, "camera_count", None)
        last = getattr(reply, "last_login_time", "") or ""
        ip = getattr(reply, "last_login_ip", "") or ""
        previous = f"; last login {last} from {ip}" if last else "; first login"
        return f"logged in as {user}: {count} camera(s) on the server{previous}"

    def logout(self) -> None:
        """Close the connection (the Logout button); works while a request runs."""
        def run() -> None:
            self._drop_client()
            self._ok("logged out: connection closed")
            self._refresh.trigger()

        threading.Thread(target=run, daemon=True, name="camprotool-panel-logout").start()

    # ------------------------------------------------------------------ commands
    def send(self) -> None:
        """Send the picked command with the form's values (the Send button)."""
        name = self.command_picker.value
        form = self.forms[name]
        raw = self.as_raw.value
        self._start(f"send {name}", lambda: self._send(form, raw))

    def _send(self, form: CommandForm, raw: bool) -> str:
        values = form.values()
        name = form.spec.name
        handler = None if raw else _REQUESTS.get(name)
        if handler is not None:
            result = handler(self, self._ensure_client(), values)
            if result is not None:
                return result
        params = form.params()
        self._ensure_client().send_raw(name, params)
        return f"sent {name} (any answer shows in the log)"

    def send_raw(self, command: str | None = None, params: str | None = None) -> None:
        """Send any command name with any parameter string (the Send raw button)."""
        command = (self.raw_command.value if command is None else command).strip()
        params = self.raw_params.value if params is None else params

        def job() -> str:
            if not command:
                raise ValueError("enter a command name")
            self._ensure_client().send_raw(command, params)
            return f"sent {command} (any answer shows in the log)"

        self._start("send raw", job)

    # the client methods behind the picker; None: send the typed frame instead
    def _req_login(self, client: Client, v: dict) -> str:
        return self._login(v["user"], v["password"])

    def _req_data_socket(self, client: Client, v: dict) -> str | None:
        if self._credentials != (v["user"], v["password"]):
            return None  # not the logged-in account: only a raw frame can carry them
        port = client.create_data_socket()
        return f"data port {port} reserved for this address (nothing connects to it from here)"

    def _req_upload(self, client: Client, v: dict) -> str:
        results = client.upload([(v["camera_id"], v["camera_password"])])
        r = results[0]
        if r.ok:
            return f"{r.camera_id} bound to the account ({STATE_NAMES[r.online]})"
        return f"{r.camera_id} refused: {r.reason}"

    def _req_download(self, client: Client, v: dict) -> str:
        cams = client.download()
        if not cams:
            return "the server has no camera for this account"
        return f"downloaded {len(cams)} camera(s): " + ", ".join(c.id for c in cams)

    def _req_status(self, client: Client, v: dict) -> str:
        answer = client.check_status(v["ids"])
        if not answer:
            return "the server answered for none of these ids"
        return ", ".join(f"{cid} {STATE_NAMES[on]}" for cid, on in answer.items())

    def _req_heartbeat(self, client: Client, v: dict) -> str:
        client.heartbeat()
        return "heartbeat sent"

    # ------------------------------------------------------------------ sync
    def sync(self) -> None:
        """Upload or download like the real client (the Sync button)."""
        text = self.local_cameras.value
        self._start("sync", lambda: self._sync(text))

    def _sync(self, text: str) -> str:
        local = parse_cameras(text)
        client = self._ensure_client()
        if client.server_camera_count is None:
            raise NotConnected("log in first: sync compares the local list with LoginOk's "
                               "camera count")
        with self._lock:
            self._progress.update(kind="sync…", current=0, total=0, style="",
                                  text="waiting for the data connection")
        self._refresh.trigger()
        result = client.sync(local)
        with self._lock:
            p = self._progress
            if result.kind == "none":
                p.update(kind="none", current=1, total=1, style="success", text="in sync")
            else:
                total = max(p["total"], len(result.uploaded) or len(result.cameras))
                p.update(kind=result.kind, current=total, total=total, style="success",
                         text=f"{result.kind} {total}/{total}")
        self._refresh.trigger()
        if result.kind == "none":
            return f"nothing to sync: {result.local_count} local = {result.server_count} on " \
                   "the server"
        if result.kind == "download":
            self.local_cameras.value = "\n".join(f"{c.id} {c.password}" for c in result.cameras)
            if not result.cameras:
                return "download: the server has no camera for this account"
            return f"downloaded {len(result.cameras)} camera(s) " \
                   f"(local {result.local_count} < server {result.server_count})"
        failed = result.failed
        text = f"uploaded {len(result.uploaded)} camera(s): " \
               f"{len(result.uploaded) - len(failed)} bound, {len(failed)} refused"
        if failed:
            text += " (" + "; ".join(f"{r.camera_id}: {r.reason}" for r in failed[:5]) + ")"
        return text

    # ------------------------------------------------------------------ messages
    def _on_logged(self, client: Client, row: LoggedMessage) -> None:
        """Every message the client logs, on the client's loop thread: keep it quick."""
        if self.client is not None and client is not self.client:
            return
        msg = row.message
        spec = msg.spec
        kind = "push" if spec is not None and spec.direction is Direction.PUSH else row.direction
        params = msg.params if self.reveal_passwords else mask_params(msg)
        entry = LogRow(row.ts_ns, row.conn, row.channel, row.direction, kind, msg.command,
                       params, msg.error)
        with self._lock:
            self._rows.append(entry)
            replot = row.direction == "s2c" and self._observe(row.ts_ns, msg, row.channel)
        self._refresh.trigger()
        if replot:
            self._replot.trigger()

    def _observe(self, ts: int, msg: Message, channel: str) -> bool:
        """Update cameras, alarms and progress from a server message (lock held).

        Returns whether the alarm plot changed: an alarm, or a status while
        there are alarms (the plot shades each lane by status).
        """
        events = self.status_model.feed(msg, ts, channel=channel)
        f = msg.fields
        if msg.command in ("UploadSucess", "UploadFail"):
            self._step("upload", f.get("synced"), f.get("total"))
        elif msg.command == "DownloadSucess":
            self._step("download", f.get("current"), f.get("total"))
        return any(isinstance(e, Alarm) for e in events) or \
            (bool(events) and bool(self.status_model.alarms))

    @property
    def cameras(self) -> dict[str, dict[str, Any]]:
        """camera id -> ``online``, ``source``, ``ts_ns`` (last status), ``alarms`` (count)
        and ``last_alarm`` (its type and time): a snapshot of :attr:`status_model`."""
        with self._lock:
            states = list(self.status_model.cameras.values())
        return {c.camera_id: {"online": c.online, "source": c.source, "ts_ns": c.ts_ns,
                              "alarms": c.alarms, "last_alarm": self._last_alarm(c)}
                for c in states}

    @property
    def alarms(self) -> list[Alarm]:
        """The alarms pushed (the latest 10,000), oldest first: ``(ts_ns, camera_id,
        alarm_type, online, message)``."""
        with self._lock:
            return list(self.status_model.alarms)

    def _last_alarm(self, cam: CameraState) -> str:
        if cam.last_alarm_ns is None:
            return ""
        return f"{cam.last_alarm or '(none)'} at {self._time(cam.last_alarm_ns)}"

    def _step(self, kind: str, current: int | None, total: int | None) -> None:
        if current is None or total is None:
            return
        self._progress.update(kind=kind, current=current, total=total,
                              text=f"{kind} {current}/{total}")

    def clear_log(self) -> None:
        with self._lock:
            self._rows.clear()
        self._refresh.trigger()

    # ------------------------------------------------------------------ rendering
    def refresh(self) -> None:
        """Redraw the log, grid, progress and alarm plot now."""
        self._refresh.flush()
        self._replot.flush()

    def _time(self, ts_ns: int) -> str:
        return datetime.fromtimestamp(ts_ns / 1e9, self.zone).strftime("%H:%M:%S.%f")[:-3]

    def _state_text(self) -> str:
        client = self.client
        if client is None or not client.connected:
            return "not connected"
        where = f"{client.host}:{client.port}"
        return f"logged in as {client.user} on {where}" if client.user else \
            f"connected to {where}"

    def _render(self) -> None:
        with self._lock:
            rows = list(self._rows)
            cams = [replace(c) for c in self.status_model.cameras.values()]
            prog = dict(self._progress)
        self.log.value = self._log_html(rows)
        self.grid.value = self._grid_html(cams)
        state = self._state_text()
        color = OK if state.startswith("logged in") else (INFO if "not" in state else "#1f4e9c")
        self.state.value = status_html(state, color, "●")
        total = max(int(prog["total"]), 1)
        if self.progress.max != total:
            self.progress.max = total
        self.progress.value = min(int(prog["current"]), total)
        self.progress.bar_style = prog["style"]
        self.progress_label.value = html.escape(prog["text"])

    def _log_html(self, rows: list[LogRow]) -> str:
        wanted = self.log_filter.value if hasattr(self, "log_filter") else ALL
        known = {s.name for s in COMMANDS}
        if wanted == UNKNOWN:
            rows = [r for r in rows if r.command not in known]
        elif wanted:
            rows = [r for r in rows if r.command == wanted]
        shown = rows[::-1][: self.log_limit]
        lines = [Row([Cell(self._time(r.ts_ns)), Cell(str(r.conn)), Cell(r.channel),
                      Cell(ARROWS[r.kind]), Cell(r.command, strong=True),
                      Cell(r.params, suffix=f"[{r.error}]" if r.error else "",
                           suffix_color=ERROR)],
                     style=f"color:{COLORS[r.kind]}") for r in shown]
        note = (f"newest first; {len(shown)} of {len(rows)} messages shown"
                if len(rows) > len(shown) else f"newest first; {len(rows)} message(s)")
        return render.table(Table(
            ["time", "conn", "channel", "dir", "command", "params"], lines, note=note,
            note_tag="small",
            box_style="max-height:320px;overflow-y:auto;font-family:monospace;font-size:12px"))

    def _grid_html(self, cams: list[CameraState]) -> str:
        rows = [Row([Cell(c.camera_id, strong=True),
                     Cell(STATE_NAMES[c.online], badge=STATE_COLORS[c.online]),
                     Cell(c.source), Cell(self._time(c.ts_ns) if c.observed else ""),
                     Cell(str(c.alarms)), Cell(self._last_alarm(c))])
                for c in sorted(cams, key=lambda c: c.camera_id)]
        return render.table(Table(
            ["camera", "status", "from", "at", "alarms", "last alarm"], rows,
            empty="no camera seen yet: query a status, sync, or wait for a push",
            empty_style="font-size:12px;font-style:italic;margin:2px 0",
            table_style="font-size:13px"))

    def _draw_alarms(self) -> None:
        with self._lock:
            alarms = list(self.status_model.alarms)
            obs = list(self.status_model.observations)
        if not alarms:
            return
        import pandas as pd

        from camprotool.analysis.plots import alarm_timeline

        frame = pd.DataFrame({
            "ts": pd.to_datetime([a.ts_ns for a in alarms], utc=True),
            "camera_id": [a.camera_id for a in alarms],
            "alarm_type": [a.alarm_type or "(none)" for a in alarms]})
        status = pd.DataFrame({
            "ts": pd.to_datetime([o.ts_ns for o in obs], utc=True),
            "camera_id": [o.camera_id for o in obs],
            "online": pd.array([o.online for o in obs], dtype="boolean")})
        now = pd.Timestamp.now(tz="UTC")
        fig = show_figure(self.alarm_plot,
                          lambda: alarm_timeline(frame, status, tz=self.zone, until=now))
        if fig is not None:
            self.alarm_figure = fig
            self.alarm_draws += 1

    def draw_sequence(self) -> None:
        """Draw the latest messages as a sequence diagram (the Sequence tab's Draw button)."""

        def job() -> str:
            from camprotool.widgets.live_sequence import LAST, draw

            client = self.client
            if client is None:
                raise ValueError("no messages yet: connect and send something first")
            messages = client.log.dataframe(reveal_passwords=self.reveal_passwords)
            fig = show_figure(self.sequence_plot, lambda: draw(messages, self.zone))
            if fig is None:
                raise ValueError("the sequence diagram could not be drawn (see the tab)")
            self.sequence_figure = fig
            shown = min(len(messages), LAST)
            return f"sequence diagram of the latest {shown} of {len(messages)} messages"

        self._start("sequence", job)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connection, stop the background threads and the widgets."""
        self._closed.set()
        self._refresh.close()
        self._replot.close()
        self._drop_client()
        self._worker.close()
        children: list[widgets.Widget] = []
        for form in self.forms.values():
            children += form.all_widgets()
        close_all([*children, *_descendants(self.widget)])

    def __enter__(self) -> ClientPanel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_REQUESTS: dict[str, Callable[[ClientPanel, Client, dict], str | None]] = {
    "Login": ClientPanel._req_login,
    "CreatDataSocket": ClientPanel._req_data_socket,
    "UploadCaramer": ClientPanel._req_upload,
    "DownLoadCaramer": ClientPanel._req_download,
    "CheckCaramerOnlineStatus": ClientPanel._req_status,
    "Heartbeat": ClientPanel._req_heartbeat,
}


def _descendants(w: widgets.Widget) -> list[widgets.Widget]:
    out = [w]
    for child in getattr(w, "children", ()):
        out += _descendants(child)
    return out
