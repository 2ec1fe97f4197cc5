"""A headless browser for the report tests: what a page looks like at a given window size, measured in the browser.

Chromium from a binary on PATH (Debian's `chromium`, which CI installs) or playwright's. `measure` loads a page with
a script that lays it out and writes its findings (JSON) into the DOM, which `--dump-dom` prints.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")
NO_BROWSER = "no headless browser here (neither playwright nor a chromium/chrome binary on PATH)"

# What a reader sees, measured after the page (and its images) loaded:
# split: every whitespace-separated word inside a table cell that the layout put on more than one line;
# headline / figure: the page-y extent of the headline list and of the first image (the answer figure);
# wide: tables wider than their box (so they scroll sideways); page: the document's and the window's widths.
PROBE = r"""
<script>
window.addEventListener('load', () => {
  const split = [];
  for (const cell of document.querySelectorAll('th, td')) {
    const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      for (const m of node.data.matchAll(/\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const rects = [...range.getClientRects()].filter(r => r.width > 0);
        const tops = rects.map(r => r.top);
        if (rects.length && Math.max(...tops) - Math.min(...tops) > rects[0].height / 2) split.push(m[0]);
      }
    }
  }
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
                      return {top: r.top + scrollY, bottom: r.bottom + scrollY, text: el.textContent.slice(0, 200)}; };
  const wide = [...document.querySelectorAll('.tw')].filter(d => d.scrollWidth > d.clientWidth + 1)
                 .map(d => d.textContent.slice(0, 60));
  const out = {split, wide, headline: box(document.querySelector('ul.headline')), figure: box(document.querySelector('img')),
               page: [document.documentElement.scrollWidth, document.documentElement.clientWidth, innerWidth, innerHeight]};
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def find_browser() -> tuple[str, str | None] | None:
    """('playwright', None) or ('chromium', path) where a headless browser is installed, else None."""
    if importlib.util.find_spec("playwright") is not None:
        return "playwright", None
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return "chromium", path
    return None


def measure(page: Path, width: int, height: int, browser: tuple[str, str | None]) -> dict:
    """PROBE's findings on ``page`` (an HTML file) in a width x height window."""
    probe = page.with_name(f"probe_{width}x{height}.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    kind, path = browser
    if kind == "playwright":
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            tab = p.chromium.launch().new_page(viewport={"width": width, "height": height})
            tab.goto(probe.as_uri())
            tab.wait_for_selector("#probe", state="attached")
            return json.loads(tab.text_content("#probe"))
    dom = subprocess.run([path, "--headless", "--disable-gpu", "--no-sandbox",
                          f"--window-size={width},{height}", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"{path} printed no findings (exit {dom.returncode}): {dom.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))
