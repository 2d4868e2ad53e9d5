"""``write_report``: the HTML page (parsed), its embedded PNGs, the table files, and a
headless Chromium rendering of it."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from camprotool import encode, read_capture
from camprotool.analysis.report import TABLES, VIEWS, write_report
from camprotool.capture.writer import PcapngWriter

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = 1_764_320_400_000_000_000  # 2025-11-28 09:00:00 UTC
MS = 1_000_000


class Page(HTMLParser):
    """What a reader of the page sees: sections, tables (header + rows), images, links."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.sections: dict[str, dict] = {}
        self.text: list[str] = []
        self._section: dict | None = None
        self._table: dict | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.findings: list[str] = []
        self._finding: list[str] | None = None
        self._in_findings = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self._section = {"tables": [], "images": [], "text": []}
            self.sections[a["id"]] = self._section
        elif tag == "img":
            self.images.append(a)
            if self._section is not None:
                self._section["images"].append(a)
        elif tag == "a":
            self.links.append(a.get("href", ""))
        elif tag == "table" and "data" in (a.get("class") or ""):
            self._table = {"header": [], "rows": []}
            if self._section is not None:
                self._section["tables"].append(self._table)
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "ul" and "findings" in (a.get("class") or ""):
            self._in_findings = True
        elif tag == "li" and self._in_findings:
            self._finding = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._table["header"]:
                self._table["rows"].append(self._row)
            else:
                self._table["header"] = self._row
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "section":
            self._section = None
        elif tag == "li" and self._finding is not None:
            self.findings.append("".join(self._finding))
            self._finding = None
        elif tag == "ul":
            self._in_findings = False

    def handle_data(self, data):
        self.text.append(data)
        if self._finding is not None:
            self._finding.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._section is not None:
            self._section["text"].append(data)

    def section_text(self, ident: str) -> str:
        return "".join(self.sections[ident]["text"])


def findings_of(page: Page) -> list[str]:
    """The items of the summary's "what went wrong" list, as text."""
    return page.findings


def decode_png(src: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    data = base64.b64decode(src[len(prefix):], validate=True)
    assert data[:8] == PNG_SIGNATURE
    return data


def assert_not_blank(png: bytes, min_width: int = 300, min_height: int = 150) -> None:
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[0] >= min_height and pixels.shape[1] >= min_width
    assert pixels[..., :3].var() > 0.002, "blank image"


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "sample.report"
    index = write_report(read_capture(SAMPLE), out, tz="Asia/Shanghai")
    return index, Page(index.read_text(encoding="utf-8"))


def test_index_is_written_and_self_contained(sample_report):
    index, page = sample_report
    assert index.name == "index.html" and index.is_file()
    html = index.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert "<style>" in html
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for link in page.links:  # only anchors and the table files next to the page
        assert link.startswith("#") or (link.startswith("tables/") and "//" not in link), link
    assert "http://" not in html and "https://" not in html and "url(" not in html


def test_summary(sample_report):
    _, page = sample_report
    text = page.section_text("summary")
    for expected in ("captures/sample.pcapng", "packets", "42", "connections",
                     "2 (1 main, 1 data)", "messages", "30", "time span",
                     "2025-11-28 17:00:00.005 → 2025-11-28 17:01:37.326",
                     "Asia/Shanghai", "protocol violations", "refused or unanswered sync steps",
                     "messages with decoding errors", "masked as ***"):
        assert expected in text, expected
    # a refused camera is not a synced one: 4 bound, 2 refused (not "6 synced")
    assert "cameras (upload)4 bound, 2 refused by the server, 0 failed" in text
    assert "capture problems0" in text
    (found,) = [li for li in findings_of(page)]
    assert found == ("2 cameras refused by the server (upload): ID和密码不匹配: CAM00003; "
                     "该摄像头绑定账号已满: DEMO0001")


def test_tables(sample_report):
    _, page = sample_report
    cap = read_capture(SAMPLE)
    for ident, name in [("sessions", "sessions"), ("transfers", "transfers"),
                        ("alarms", "alarms"), ("connections", "connections")]:
        table = page.sections[ident]["tables"][0]
        expected = VIEWS.get(name, [c for c in getattr(cap, name).columns if c != "raw"])
        assert table["header"] == expected, ident
        assert set(expected) <= set(getattr(cap, name).columns), ident
        assert len(table["rows"]) == len(getattr(cap, name)), ident
    transfers = page.sections["transfers"]["tables"][0]["header"]
    assert transfers.index("close_reason") == transfers.index("status") + 1  # side by side
    sessions = page.sections["sessions"]["tables"][0]
    row = dict(zip(sessions["header"], sessions["rows"][0], strict=True))
    assert row["user"] == "demo" and row["outcome"] == "ok" and row["data_conns"] == "1"
    assert row["start"] == "2025-11-28 17:00:00.005"  # shown in the page's zone
    alarms = page.sections["alarms"]["tables"][0]
    assert [r[alarms["header"].index("alarm_type")] for r in alarms["rows"]] == \
        ["motion", "video_loss", "io_alarm", "motion"]
    # the failed upload steps, with their Chinese reasons
    failed = page.sections["transfers"]["tables"][1]
    assert failed["header"] == ["kind", "outcome", "reason", "steps", "cameras", "first_frame"]
    assert failed["rows"] == [["upload", "refused", "ID和密码不匹配", "1", "CAM00003", "18"],
                              ["upload", "refused", "该摄像头绑定账号已满", "1", "DEMO0001", "21"]]
    steps = page.sections["transfers"]["tables"][2]
    reasons = [r[steps["header"].index("reason")] for r in steps["rows"]]
    assert reasons == ["ID和密码不匹配", "该摄像头绑定账号已满"]
    assert [r[steps["header"].index("frame")] for r in steps["rows"]] == ["18", "21"]
    assert "None" in page.section_text("problems")
    assert "No breach" in page.section_text("violations")


def test_plots_are_embedded_pngs(sample_report):
    _, page = sample_report
    assert len(page.images) == 5  # rate, one sequence diagram, sync, alarms, status
    for image in page.images:
        assert image["alt"]
        assert_not_blank(decode_png(image["src"]))
    per_section = {ident: [i["alt"] for i in s["images"]] for ident, s in page.sections.items()}
    assert per_section["summary"] == ["Message rate by command"]
    assert per_section["sessions"] == ["Message sequence of session 0"]
    assert per_section["transfers"] == ["Sync progress per data connection"]
    assert per_section["alarms"] == ["Alarm timeline"]
    assert per_section["status"] == ["Camera status timeline"]


def test_every_table_as_csv_and_parquet(sample_report):
    index, page = sample_report
    cap = read_capture(SAMPLE)
    files = page.sections["files"]["tables"][0]
    assert [r[0] for r in files["rows"]] == TABLES
    for name in TABLES:
        df = getattr(cap, name)
        csv = index.parent / "tables" / f"{name}.csv"
        parquet = index.parent / "tables" / f"{name}.parquet"
        assert csv.is_file() and parquet.is_file(), name
        from_csv = pd.read_csv(csv)
        from_parquet = pd.read_parquet(parquet)
        assert list(from_csv.columns) == list(df.columns) == list(from_parquet.columns), name
        assert len(from_csv) == len(df) == len(from_parquet), name
    messages = pd.read_parquet(index.parent / "tables" / "messages.parquet")
    assert str(messages["ts"].dtype) == "datetime64[ns, UTC]"  # files stay in UTC
    assert messages["ts"].iloc[0] == pd.Timestamp("2025-11-28 09:00:00.005", tz="UTC")
    assert messages["params"].iloc[0] == "demo|***"


# ------------------------------------------------------------------ what went wrong


@pytest.fixture(scope="module")
def failed_sync_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("failed_sync")
    cap = read_capture(ROOT / "captures" / "failed_sync.pcapng")
    index = write_report(cap, out, tz="UTC")
    return cap, index, Page(index.read_text(encoding="utf-8"))


def test_failed_sync_leads_with_what_went_wrong(failed_sync_report):
    _, _, page = failed_sync_report
    assert page.findings == [
        "15 bytes lost (first at frame 20): connection 0: 15 bytes lost server→client (s2c); "
        "frame 20 is the first after the loss (capture problems)",
        "1 camera refused by the server (upload): ID和密码不匹配: CAM00012",
        "upload on connection 1 cut short after 3 of 5 cameras, closed by rst",
        "5 protocol violations: upload_sequence (1), incomplete_sync (1), heartbeat_gap (1), "
        "check_too_many_ids (1), unannounced_data_port (1) (each with its message and frame)",
        "2 messages not fully decoded (decoding errors)",
    ]
    text = page.section_text("summary")
    assert text.index("What went wrong") < text.index("15 bytes lost") < text.index(
        "capture file")
    assert "capture problems1 (1 lost_bytes)" in text
    assert "cameras (upload)3 bound, 1 refused by the server, 2 failed (2 never reached: " \
        "transfer cut short)" in text
    assert "transfers closed by1 rst, 1 fin" in text


def test_failed_sync_problems_and_violations_name_their_frames(failed_sync_report):
    cap, index, page = failed_sync_report
    (problems,) = page.sections["problems"]["tables"]
    assert problems["header"] == ["frame", "kind", "conn", "direction", "detail"]
    assert problems["rows"] == [["20", "lost_bytes", "0", "s2c", "connection 0: 15 bytes "
                                 "lost server→client (s2c); frame 20 is the first after the "
                                 "loss"]]
    jump = f"wireshark -r {cap.source} -g FRAME"
    assert jump in page.section_text("problems")
    # the summary says how to open any frame of the page, each frame cell has its line
    assert jump in page.section_text("summary") and "cap.packets(FRAME)" in \
        page.section_text("summary")
    text = index.read_text(encoding="utf-8")
    assert f'<td class="num" title="wireshark -r {cap.source} -g 20">20</td>' in text
    (v,) = page.sections["violations"]["tables"][:1]
    assert v["header"] == VIEWS["violations"]
    got = [(r[0], int(r[1]), r[5]) for r in v["rows"]]
    m = cap.messages
    want = [(str(rule), int(m.loc[msg, "frame"]), str(m.loc[msg, "command"]))
            for rule, msg in zip(cap.violations["rule"], cap.violations["message"],
                                 strict=True)]
    assert got == want and len(got) == 5
    # the 22 ids of check_too_many_ids: cut on the page, whole in the tooltip and the file
    params = v["rows"][[r[0] for r in v["rows"]].index("check_too_many_ids")][6]
    assert params.endswith("…") and len(params) == 160
    full = m.loc[cap.violations["message"][cap.violations["rule"] == "check_too_many_ids"]
                 .iloc[0], "params"]
    assert f'title="{full}"' in index.read_text(encoding="utf-8")


def test_tables_fit_a_screen(failed_sync_report, sample_report):
    for _, page in (failed_sync_report[1:], sample_report):
        for ident, section in page.sections.items():
            for table in section["tables"]:
                if ident != "files":
                    assert len(table["header"]) <= 15, (ident, table["header"])
                for row in table["rows"]:
                    assert all(len(cell) <= 160 for cell in row), (ident, row)


def test_a_clean_capture_says_nothing_went_wrong(tmp_path):
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    c.send("c2s", encode("Login", "demo|demo"), T0 + MS)
    c.send("s2c", encode("LoginOk", "3|2025-11-27 18:02:11|10.0.0.1"), T0 + 2 * MS)
    c.close(T0 + 3 * MS)
    index = write_report(read_capture(w.getvalue()), tmp_path, tz="UTC")
    page = Page(index.read_text(encoding="utf-8"))
    assert page.findings == ["Nothing went wrong: no capture problems, no refused or failed "
                             "camera, no protocol violation, no decoding error."]


def test_a_wrong_dialect_leads_the_report(tmp_path):
    cap = read_capture(SAMPLE, dialect="lp32le")
    page = Page(write_report(cap, tmp_path, tz="UTC").read_text(encoding="utf-8"))
    assert page.findings[0].startswith("2 problems dialect_failed (first at frame 24): "
                                       "connection 1: every frame failed to decode as lp32le; "
                                       "try dialect='auto'")


# ------------------------------------------------------------------ a capture with problems


def tricky_capture() -> bytes:
    """Markup in names, a password, violations, a decoding error, a cut-short upload."""
    w = PcapngWriter()
    main = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    t = T0 + 10 * MS

    def say(conn, direction, command, params=""):
        nonlocal t
        t += 5 * MS
        conn.send(direction, encode(command, params), t)

    say(main, "c2s", "CheckCaramerOnlineStatus", "CAM1")  # before_login
    say(main, "c2s", "Login", "<script>alert(1)</script>|s3cret")
    say(main, "s2c", "LoginOk", "3|2025-11-27 18:02:11|10.0.0.1")
    say(main, "c2s", "CreatDataSocket", "<script>alert(1)</script>|s3cret")
    say(main, "s2c", "ReturnDataSocketPort", "9001")
    data = w.tcp(("10.0.0.1", 50001), ("10.0.0.2", 9001), t + MS)
    t += 2 * MS
    say(data, "c2s", "UploadCaramer", "CAM<b>1|pw1|1|3")
    say(data, "s2c", "UploadSucess", "CAM<b>1|true|1|3")
    say(data, "c2s", "UploadCaramer", "CAM2|pw2|2|3")
    say(data, "s2c", "UploadFail", "CAM2|ID和密码不匹配|2|3")
    data.close(t + MS)  # incomplete_sync
    say(main, "c2s", "CheckCaramerOnlineStatus", ";".join(f"CAM{i:02d}" for i in range(25)))
    say(main, "s2c", "PrushCaramerAlarmInfo", "CAM<b>1:motion&smoke")
    say(main, "s2c", "PrushCaramerOnlineStatus", "CAM2:maybe")  # malformed
    say(main, "s2c", "PrushCaramerOnlineStatus", "CAM2:false")
    say(main, "s2c", "PrushCaramerAlarmInfo", "CAM2:io_alarm")
    main.close(t + MS)
    return w.getvalue()


@pytest.fixture(scope="module")
def tricky_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("tricky")
    index = write_report(read_capture(tricky_capture()), out, tz="UTC", max_rows=3)
    return index, Page(index.read_text(encoding="utf-8"))


def test_values_are_escaped_and_passwords_stay_masked(tricky_report):
    index, page = tricky_report
    html = index.read_text(encoding="utf-8")
    assert "script" not in page.tags and "b" not in page.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "CAM&lt;b&gt;1" in html and "motion&amp;smoke" in html
    sessions = page.sections["sessions"]["tables"][0]
    assert sessions["rows"][0][sessions["header"].index("user")] == "<script>alert(1)</script>"
    # the plots are base64 PNGs: a short word turns up in their letters by chance
    # ("pw1" did, once fonts drew the plot differently), so only the text is searched
    text = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", html)
    assert "s3cret" not in text and "pw1" not in text
    for path in (index.parent / "tables").iterdir():
        assert b"s3cret" not in path.read_bytes(), path.name


def test_violations_errors_and_truncation(tricky_report):
    index, page = tricky_report
    summary = page.section_text("summary")
    assert "protocol violations4 (" in summary
    for rule in ("before_login", "incomplete_sync", "check_too_many_ids", "malformed_params"):
        assert rule in summary
    violations = page.sections["violations"]["tables"][0]
    assert len(violations["rows"]) == 3  # max_rows
    text = page.section_text("violations")
    assert "Showing the first 3 of 4 rows" in text and "tables/violations.csv" in text
    assert len(pd.read_csv(index.parent / "tables" / "violations.csv")) == 4
    errors = page.sections["errors"]["tables"][0]
    assert errors["rows"][0][errors["header"].index("error")].startswith("online: 'maybe'")


def test_a_capture_without_protocol_messages(tmp_path):
    w = PcapngWriter()
    conv = w.tcp(("10.0.0.1", 1234), ("10.0.0.2", 80), T0)
    conv.send("c2s", b"GET / HTTP/1.0\r\n\r\n", T0 + MS)
    conv.close(T0 + 2 * MS)
    index = write_report(read_capture(w.getvalue()), tmp_path / "empty", tz="UTC")
    page = Page(index.read_text(encoding="utf-8"))
    assert len(page.images) == 4  # the rate, sync, alarm and status figures, saying "no ..."
    for image in page.images:
        decode_png(image["src"])
    assert "none" in page.section_text("sessions")
    assert (tmp_path / "empty" / "tables" / "messages.parquet").is_file()


def test_bad_time_zone_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/Town'"):
        write_report(read_capture(SAMPLE), tmp_path / "out", tz="Nowhere/Town")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ headless Chromium


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True, timeout=60, cwd=tmp)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium not installed (`make sysdeps` installs it with apt-get "
                           "when run as root)")
def test_chromium_renders_the_report(sample_report, tmp_path):
    index, _ = sample_report
    url = index.resolve().as_uri()
    dom = chromium("--dump-dom", url, tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    page = Page(dom.stdout.decode("utf-8"))
    assert {"summary", "violations", "sessions", "transfers", "alarms", "status",
            "connections", "files"} <= set(page.sections)
    sessions = page.sections["sessions"]["tables"][0]
    assert sessions["rows"][0][sessions["header"].index("user")] == "demo"
    assert len(page.images) == 5
    for image in page.images:
        decode_png(image["src"])

    shot = tmp_path / "shot.png"
    run = chromium(f"--screenshot={shot}", "--window-size=1400,3000", url, tmp=tmp_path)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    png = shot.read_bytes()
    assert png[:8] == PNG_SIGNATURE
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (3000, 1400)
    assert pixels[..., :3].var() > 0.002, "blank screenshot"
    # the embedded plots were drawn: the screenshot holds colours, not just text
    rgb = pixels[..., :3].reshape(-1, 3)
    saturated = (rgb.max(axis=1) - rgb.min(axis=1)) > 0.3
    assert saturated.mean() > 0.002


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium not installed (`make sysdeps` installs it with apt-get "
                           "when run as root)")
def test_failed_sync_summary_in_chromium(tmp_path, monkeypatch):
    """The summary a reader sees first leads with the lost bytes, the refused camera and
    the violations; the screenshot goes to docs/screenshots/ (``report-summary.png``,
    for docs/report.md) when CAMPROTOOL_UPDATE_SCREENSHOTS=1."""
    import os

    monkeypatch.chdir(ROOT)  # the page names the capture as given: captures/...
    index = write_report(read_capture("captures/failed_sync.pcapng"), tmp_path / "report",
                         tz="UTC")
    url = index.resolve().as_uri()
    dom = chromium("--dump-dom", url, tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    first = Page(dom.stdout.decode("utf-8")).findings[:3]
    assert first[0].startswith("15 bytes lost (first at frame 20)")
    assert first[1].startswith("1 camera refused by the server (upload): ID和密码不匹配")
    shot = tmp_path / "report-summary.png"
    run = chromium(f"--screenshot={shot}", "--window-size=1400,1250", url, tmp=tmp_path)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    pixels = mpimg.imread(io.BytesIO(shot.read_bytes()), format="png")
    assert pixels.shape[:2] == (1250, 1400) and pixels[..., :3].var() > 0.002
    if os.environ.get("CAMPROTOOL_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "screenshots" / "report-summary.png")
