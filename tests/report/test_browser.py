"""The report in a real browser (headless Chromium, see conftest.py): every figure decodes and draws
something (not blank), there are as many as the page announces, the console stays free of errors,
and a full-page screenshot is not blank either."""

from __future__ import annotations

import base64
import io
import re
import shutil

import pytest

from mtlrec.report import write_report

# For each figure: its name, and what the browser drew (natural and shown size, and in a canvas
# copy the share of pixels that are not white and the number of distinct colours, sampled).
PROBE = """(async () => {
  const out = [];
  for (const fig of document.querySelectorAll('figure')) {
    const img = fig.querySelector('img'), svg = fig.querySelector('svg');
    const item = {name: fig.dataset.figure || '', kind: img ? 'img' : svg ? 'svg' : 'none'};
    if (img) {
      try { await img.decode(); } catch (e) { item.error = String(e); }
      const box = img.getBoundingClientRect();
      Object.assign(item, {natural: [img.naturalWidth, img.naturalHeight], shown: [box.width, box.height]});
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      let ink = 0, n = 0; const colours = new Set();
      for (let i = 0; i < px.length; i += 4 * 7) {
        n++;
        if (px[i] < 245 || px[i + 1] < 245 || px[i + 2] < 245) ink++;
        colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
      }
      Object.assign(item, {ink: ink / Math.max(n, 1), colours: colours.size});
    } else if (svg) {
      const box = svg.getBoundingClientRect();
      Object.assign(item, {shown: [box.width, box.height], ink: svg.querySelectorAll('path,rect,line,text').length});
    }
    out.push(item);
  }
  return {figures: out, images: document.images.length, svgs: document.querySelectorAll('svg').length,
          height: document.documentElement.scrollHeight};
})()"""


def screenshot(browser, height: int) -> bytes:
    """The whole page as a PNG, 1200 CSS pixels wide."""
    browser.call("Emulation.setDeviceMetricsOverride", session=True, width=1200, height=min(height, 16000),
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
    shot = browser.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)
    return base64.b64decode(shot["data"])


def check_in_browser(browser, report, tmp_path) -> dict:
    browser.call("Page.navigate", session=True, url=report.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    found = browser.evaluate(PROBE)
    html = report.read_text()
    expected = re.findall(r'<figure data-figure="(\w+)">', html)
    assert [f["name"] for f in found["figures"]] == expected
    assert found["images"] + found["svgs"] == len(expected)  # no other image anywhere
    for f in found["figures"]:
        assert "error" not in f, f
        assert f["kind"] == "img" and f["natural"][0] > 300 and f["natural"][1] > 150, f
        assert f["shown"][0] > 300, f  # laid out at a readable width
        assert 0.02 < f["ink"] < 0.95 and f["colours"] > 8, f  # drawn: neither blank nor a solid block
    assert browser.errors() == []

    from PIL import Image

    png = screenshot(browser, found["height"])
    (tmp_path / "screenshot.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.size[0] == 1200 and image.size[1] >= min(found["height"], 16000) - 2
    assert len(image.getcolors(1 << 16) or range(1 << 16)) > 32  # text and figures, not one flat colour
    return found


def test_a_run_report_renders_in_chromium(browser, trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    found = check_in_browser(browser, write_report(run), tmp_path)
    assert [f["name"] for f in found["figures"]] == ["curves", "conflict", "calibration", "residuals"]


def test_a_compare_report_renders_in_chromium(browser, tmp_path):
    from mtlrec.compare import BASELINE, summarize, write_csv
    from mtlrec.spec import TaskSpec

    tasks = [TaskSpec("click", "binary"), TaskSpec("purchase", "binary"), TaskSpec("value", "regression")]
    results = {BASELINE: [{"test": {"click": {"auc": 0.70 + s}, "purchase": {"auc": 0.8}, "value": {"rmse": 10.0 + s}}}
                          for s in (0.0, 0.02)]}  # fmt: skip
    for i, name in enumerate(("static", "pcgrad")):
        results[("mmoe", name)] = [{"test": {"click": {"auc": 0.72 + s + i / 100}, "purchase": {"auc": 0.79},
                                             "value": {"rmse": 12.0 - i + s}}} for s in (0.0, 0.02)]  # fmt: skip
    out = tmp_path / "cmp"
    write_csv(out / "compare.csv", summarize(tasks, results, {"binary": "auc", "regression": "rmse"}))
    found = check_in_browser(browser, write_report(out), tmp_path)
    assert [f["name"] for f in found["figures"]] == ["lift"]
