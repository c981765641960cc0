"""The HTML report opened in headless Chromium (Debian's ``chromium``, installed by ``.ci/run``): it
renders, the tables are in the DOM, and the console stays silent. The page has no script, so any
console message (an error, a failed resource load) is a defect; a control page proves that console
messages are captured at all."""

import shutil
import subprocess
from pathlib import Path

import pytest

from ue_bench.bench.render import build_report

FIXTURE = Path(__file__).parent / "fixtures" / "report_run"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


def open_in_chromium(page: Path, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """The rendered DOM and the console messages of ``page`` (Chromium logs them as ``INFO:CONSOLE``)."""
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--window-size=1400,2000", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=90)
    return out.stdout, [line for line in out.stderr.splitlines() if ":CONSOLE" in line]


def test_console_messages_are_captured(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('boom'); missing();</script></body></html>")
    _, console = open_in_chromium(bad, tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console) and any("ReferenceError" in line for line in console)


def test_report_page_renders_without_console_errors(tmp_path):
    build_report(FIXTURE, ["html"], out_dir=tmp_path / "report")
    page = tmp_path / "report" / "report.html"
    dom, console = open_in_chromium(page, tmp_path / "profile", "--dump-dom")
    assert console == []
    for table_id in ("retrieval-table", "cost-table"):
        assert f'id="{table_id}"' in dom
    assert dom.count('class="report leaderboard"') == 2 and "<h2>Leaderboard</h2>" in dom
    # the figures: transferability, poison-ratio curve and learning curves
    assert "<h2>Learning curves</h2>" in dom and "<h2>Final and peak over epochs</h2>" in dom
    assert dom.count("<img") == 3 and 'src="data:image/png;base64,' in dom
    shot = tmp_path / "page.png"
    _, console = open_in_chromium(page, tmp_path / "profile2", f"--screenshot={shot}")
    assert console == [] and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
