"""Headless Chromium for the HTML tests: screenshots, the DOM after load, and what it fetched."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")

# Reports what the loaded page holds: images that decoded, and every resource it requested.
_PROBE = """<script>
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  document.body.setAttribute('data-probe', JSON.stringify({
    images: images.length,
    decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    resources: performance.getEntriesByType('resource').map(e => e.name),
  }));
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions",
               "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def screenshot(html: Path, out: Path, *, width: int = 1280, height: int = 2400) -> Path:
    _chromium(f"--screenshot={out}", f"--window-size={width},{height}", "--hide-scrollbars",
              html.resolve().as_uri())
    assert out.is_file(), f"chromium wrote no screenshot of {html}"
    return out


def loaded_dom(html: Path, workdir: Path) -> tuple[str, dict]:
    """The DOM after load and the probe's findings, for a copy of ``html`` with a probe script."""
    text = html.read_text(encoding="utf-8")
    # The page forbids scripts; the probed copy allows inline ones and nothing else.
    text = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    probed = workdir / f"probed-{html.name}"
    probed.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    result = _chromium("--dump-dom", "--virtual-time-budget=10000", probed.resolve().as_uri())
    dom = result.stdout
    match = re.search(r"data-probe=\"([^\"]*)\"", dom)
    assert match, f"the probe did not run: {result.stderr[-500:]}"
    return dom, json.loads(match.group(1).replace("&quot;", '"'))
