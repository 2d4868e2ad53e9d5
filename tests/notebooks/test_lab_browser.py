"""JupyterLab end to end: the notebooks' widgets render and answer clicks in a real browser.

A JupyterLab server runs on 127.0.0.1 (port picked by the system, a random
token) over a temporary copy of ``notebooks/`` and ``captures/``, with its
config, runtime, settings and workspace directories in tmp_path, so the repo
and the home directory stay untouched. Announcements and update checks are
off, and the browser may fetch nothing but the server: any other request is
aborted and fails the test. Debian's chromium (``/usr/bin/chromium``, from
``make sysdeps``) is driven by Playwright through the menus a user would use.

The screenshots are written to the test's tmp_path, and copied to
``docs/screenshots/`` (for ``docs/notebooks.md``) when
``CAMPROTOOL_UPDATE_SCREENSHOTS=1``: ``make screenshots``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from notebooks_support import NOTEBOOKS_DIR, ROOT

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (make sysdeps installs it)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

# JupyterLab's start (~5 s), the page (~4 s) and each notebook (~10 s), with room for a
# loaded CI machine; every wait below has its own bound.
pytestmark = pytest.mark.timeout(300)

SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SERVER_START_S = 60
PAGE_S = 60  # page load, kernel start
RUN_ALL_S = 120  # every cell of a notebook
WIDGET_S = 30  # a click's answer, a plot


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen = field(repr=False)

    def api(self, method: str, path: str) -> object:
        req = urllib.request.Request(f"{self.url}api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def shutdown_kernels(self) -> None:
        for kernel in self.api("GET", "kernels") or []:
            with contextlib.suppress(urllib.error.URLError, OSError):
                self.api("DELETE", f"kernels/{kernel['id']}")


def _settings(directory: Path) -> None:
    """User settings that keep JupyterLab quiet: no news prompt, no update check."""
    path = directory / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _copy_tree(tmp: Path) -> Path:
    root = tmp / "root"
    shutil.copytree(NOTEBOOKS_DIR, root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (root / "captures").mkdir()
    for capture in (ROOT / "captures").iterdir():
        # capture files only: `camprotool report` leaves CAPTURE.report/ directories here
        if capture.suffix in (".pcap", ".pcapng") and capture.is_file():
            shutil.copy2(capture, root / "captures" / capture.name)
    return root


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, jupyter_data_dir: Path) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("lab")
    root = _copy_tree(tmp)
    dirs = {name: tmp / name for name in ("config", "runtime", "data", "settings",
                                          "workspaces", "ipython")}
    for d in dirs.values():
        d.mkdir()
    _settings(dirs["settings"])
    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
               JUPYTER_DATA_DIR=str(dirs["data"]), JUPYTER_PATH=str(jupyter_data_dir),
               IPYTHONDIR=str(dirs["ipython"]), JUPYTER_PLATFORM_DIRS="0")
    env.pop("MPLBACKEND", None)
    token = secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class="
           "jupyterlab.handlers.announcements.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly",
           f"--LabApp.user_settings_dir={dirs['settings']}",
           f"--LabApp.workspaces_dir={dirs['workspaces']}"]
    log = tmp / "jupyterlab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        info = dirs["runtime"] / f"jpserver-{proc.pid}.json"
        deadline = time.monotonic() + SERVER_START_S
        server = None
        while server is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"JupyterLab did not start within {SERVER_START_S} s:\n{text}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                url = json.loads(info.read_text())["url"]
                candidate = Lab(url, token, root, log, proc)
                candidate.api("GET", "status")
                server = candidate
            if server is None:
                time.sleep(0.25)
        yield server
        with contextlib.suppress(urllib.error.URLError, OSError):
            server.shutdown_kernels()
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, lab: Lab) -> Iterator[object]:
    """A page that may talk to the server only; what else it tried is checked at the end."""
    context = browser.new_context(viewport={"width": 1400, "height": 1900})
    context.set_default_timeout(WIDGET_S * 1000)
    outside: list[str] = []

    def only_local(route) -> None:
        if route.request.url.startswith(lab.url) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    pg = context.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    try:
        yield pg
    finally:
        context.close()
        with contextlib.suppress(urllib.error.URLError, OSError):
            lab.shutdown_kernels()
    assert not outside, f"the page tried to fetch from outside the server: {outside}"


def run_all(page, lab: Lab, notebook: str) -> None:
    """Open a notebook, wait for its kernel, Run > Run All Cells, wait for every cell."""
    page.goto(f"{lab.url}lab/tree/notebooks/{notebook}?reset&token={lab.token}")
    page.wait_for_selector(".jp-Notebook", timeout=PAGE_S * 1000)
    # the status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected
    page.get_by_text(re.compile(r"\| Idle$")).wait_for(timeout=PAGE_S * 1000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    try:
        page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                    .map(e => e.textContent.trim());
                return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
            }""", timeout=RUN_ALL_S * 1000)
    except sync_api.TimeoutError:
        page.screenshot(path=str(lab.root / f"{notebook}.timeout.png"))
        pytest.fail(f"{notebook}: Run All did not finish within {RUN_ALL_S} s\n"
                    f"{lab.log_tail()}")
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    texts = [t for t in errors.all_inner_texts() if re.search(r"Traceback|Error|Exception", t)]
    assert not texts, f"{notebook} printed errors in JupyterLab:\n" + "\n".join(texts)


def widget_output(page, button_label: str):
    """The output area of the cell that displays the widget with that button."""
    button = page.locator("button.jupyter-button",
                          has_text=re.compile(rf"^\s*{re.escape(button_label)}\s*$"))
    return page.locator(".jp-OutputArea-output").filter(has=button), button


def save_screenshot(element, tmp_path: Path, name: str) -> Path:
    """Screenshot into tmp_path; also refresh docs/screenshots/ when asked
    (CAMPROTOOL_UPDATE_SCREENSHOTS=1), so an ordinary test run leaves git clean."""
    shot = tmp_path / name
    element.screenshot(path=str(shot), animations="disabled")
    assert shot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    if os.environ.get("CAMPROTOOL_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / name)
    return shot


LOGIN_OKS = """() => [...document.querySelectorAll('.widget-html-content b')]
    .filter(b => b.textContent === 'LoginOk').length"""


def test_client_panel_logs_in_from_the_browser(page, lab: Lab, tmp_path: Path) -> None:
    run_all(page, lab, "03-interactive-client.ipynb")
    panel, login = widget_output(page, "Login")
    login.wait_for(timeout=WIDGET_S * 1000)
    assert login.count() == 1
    panel.scroll_into_view_if_needed()
    # the notebook logged in once from code; the click must bring a second LoginOk
    before = page.evaluate(LOGIN_OKS)
    assert before >= 1, "the notebook's own login did not reach the rendered log"
    login.click()
    try:
        page.wait_for_function(f"() => ({LOGIN_OKS})() > {before}", timeout=WIDGET_S * 1000)
    except sync_api.TimeoutError:
        page.screenshot(path=str(tmp_path / "client-panel.timeout.png"))
        pytest.fail(f"no new LoginOk in the panel's log {WIDGET_S} s after clicking Login; "
                    f"console errors: {page.console_errors}")
    panel.get_by_text(re.compile(r"logged in as demo")).first.wait_for()
    # the status push and the two alarms of the notebook are in the grid and the plot
    assert panel.locator(".widget-html-content").get_by_text("tamper at").count() == 1
    panel.locator("img").first.wait_for()
    page.wait_for_timeout(500)  # let the last redraw land
    save_screenshot(panel, tmp_path, "client-panel.png")
    page.screenshot(path=str(tmp_path / "03-page.png"))


#: whether any option of a selection list is wider than the list (its text cut)
CLIPPED = """el => [...el.querySelectorAll('select')].some(s => s.scrollWidth > s.clientWidth)"""


def _select(explorer, label: str):
    """The <select> of the explorer's selection list with that description."""
    box = explorer.locator(".widget-select-multiple").filter(
        has=explorer.page.locator("label", has_text=re.compile(rf"^{label}$")))
    return box.locator("select")


def _overlap(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_capture_explorer_renders_in_the_browser(page, lab: Lab, tmp_path: Path) -> None:
    run_all(page, lab, "04-explorer.ipynb")
    explorer, load = widget_output(page, "Load")
    load.wait_for(timeout=WIDGET_S * 1000)
    explorer.scroll_into_view_if_needed()
    explorer.get_by_text(re.compile(r"of 30,?\d{3} messages selected")).wait_for()
    # given a Capture, the path box names its file; the connection list shows whole
    # addresses; the time range reads in words, clear of the button beside the slider
    path_box = explorer.locator("input[placeholder='path to a .pcap/.pcapng file']")
    assert path_box.input_value().endswith("phones.pcapng")
    assert not _select(explorer, "connection").evaluate(
        "s => s.scrollWidth > s.clientWidth"), "the connection list cuts its options"
    words = explorer.get_by_text(re.compile(r"^time from ")).first
    words.wait_for()
    button = explorer.locator("button.jupyter-button", has_text="All messages")
    assert not _overlap(words.bounding_box(), button.bounding_box())
    # the sync progress tab, chosen from code, shows its plot for the selected session
    explorer.locator(".widget-tab img").first.wait_for(timeout=WIDGET_S * 1000)
    assert explorer.locator(".widget-tab img").first.bounding_box()["height"] > 100
    page.wait_for_timeout(500)
    save_screenshot(explorer, tmp_path, "capture-explorer.png")
    page.screenshot(path=str(tmp_path / "04-page.png"))

    # load another capture from the path box
    path_box.fill("../captures/sample.pcapng")
    load.click()
    explorer.get_by_text(re.compile(r"^30 of 30 messages selected")).wait_for()
    status = explorer.get_by_text(re.compile(r"loaded \.\./captures/sample\.pcapng: 30 messages"))
    status.wait_for()
    # filter by camera with a search: the list narrows to the demo cameras, pick one
    explorer.locator("input[placeholder='search cameras']").fill("demo")
    cameras = _select(explorer, "camera")
    page.wait_for_function(
        "s => [...s.options].map(o => o.textContent).join() === 'DEMO0001,DEMO0002,DEMO0003'",
        arg=cameras.element_handle())
    cameras.select_option("DEMO0001")
    explorer.get_by_text(re.compile(r"messages selected \(camera DEMO0001\)")).wait_for()
    count = explorer.get_by_text(re.compile(r"^\d+ of 30 messages selected$")).first
    assert int(count.inner_text().split()[0]) < 30
    # follow the first selected message to its packets (the Packets row offers it)
    explorer.locator("button.jupyter-button", has_text=re.compile(r"^\s*Packets\s*$")).click()
    dump = explorer.locator(".camprotool-packets pre")
    dump.wait_for()
    assert re.search(r"frame \d+ .* conn \d+ (c2s|s2c)", dump.inner_text())
    jump = explorer.locator(".camprotool-packets .camprotool-wireshark")
    assert re.search(r"wireshark -r \.\./captures/sample\.pcapng -g \d+$", jump.inner_text())
    assert not explorer.evaluate(CLIPPED), "a selection list cuts its options"
    page.wait_for_timeout(500)  # let the last messages and redraws land
    save_screenshot(explorer, tmp_path, "capture-explorer-packets.png")
    assert not page.console_errors, f"console errors: {page.console_errors}"
