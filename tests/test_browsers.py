"""The page in Firefox and WebKit, not only Chromium: the same in-page check
(tests/browsers/check.js) through each engine's own driver. An engine that is not installed
is skipped with the reason (.ci/run installs both)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnviz.extraction import extract
from attnviz.render.html import render_html

HERE = Path(__file__).resolve().parent / "browsers"
CHECK = HERE / "check.js"
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
WEBKIT_DRIVER = shutil.which("WebKitWebDriver")
MINIBROWSER = Path("/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser")
XVFB = shutil.which("xvfb-run")
HOSTILE = 'the cat <script>window.__pwned = 1</script> sat <img src=x onerror="window.__pwned=2">'

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page_file(loaded_models, tmp_path_factory):
    result = extract(HOSTILE, model=loaded_models["bert"])
    path = tmp_path_factory.mktemp("browsers") / "page.html"
    path.write_text(render_html(result), encoding="utf-8")
    return path, result


def _assert_check(seen: dict, result) -> None:
    array = result.attentions["encoder"]
    rounded = np.rint(array.astype(np.float64) * 65535) / 65535
    assert seen["errors"] == [], seen["errors"]
    assert seen["pwned"] is None
    assert seen["text"] == HOSTILE  # shown literally
    assert seen["tokens"] == len(result.tokens)
    assert seen["swatches"] == array.shape[1]
    assert seen["linesAll"] == int((rounded[0] >= 0.01).sum())
    assert seen["linesAll"] - seen["linesWithoutHead0"] == int((rounded[0, 0] >= 0.01).sum())
    assert seen["pressed0"] == "false"
    assert seen["matrixTitle"] == "encoder · layer 1 · head 2"
    assert seen["matrixMax"] == pytest.approx(float(array[1, 2].max()), abs=1e-4)
    assert seen["gridCells"] == array.shape[0] * array.shape[1]
    assert seen["layerPickerHidden"] is True
    assert seen["rolloutTitle"].startswith("encoder · rollout to layer")


@pytest.mark.skipif(FIREFOX is None, reason="Firefox is not installed (apt-get install firefox-esr)")
@pytest.mark.skipif(
    not (HERE / "node_modules" / "puppeteer-core").is_dir() or shutil.which("node") is None,
    reason="puppeteer-core is not installed (cd tests/browsers && npm install)",
)
def test_the_page_works_in_firefox(page_file, tmp_path):
    path, result = page_file
    env = dict(os.environ, FIREFOX=str(FIREFOX), HOME=str(tmp_path), MOZ_HEADLESS="1")
    done = subprocess.run(
        ["node", str(HERE / "firefox.mjs"), str(path), str(CHECK)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=HERE,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["engine"].startswith("firefox")
    _assert_check(seen, result)


WEBKIT_SCRIPT = """
import json, sys
from selenium import webdriver
from selenium.webdriver.webkitgtk.options import Options
from selenium.webdriver.webkitgtk.service import Service

page, check, driver_path, browser = sys.argv[1:5]
options = Options()
options.binary_location = browser
options.add_argument("--automation")
driver = webdriver.WebKitGTK(options=options, service=Service(executable_path=driver_path))
try:
    driver.set_script_timeout(60)
    driver.get("file://" + page)
    source = open(check).read()
    seen = driver.execute_async_script(source + "\\nconst done = arguments[arguments.length - 1];"
                                       "attnvizCheck().then(done, (e) => done({failed: String(e)}));")
    seen["errors"] = seen.get("errors", [])
    seen["engine"] = "webkit " + str(driver.capabilities.get("browserVersion"))
    print(json.dumps(seen))
finally:
    driver.quit()
"""


@pytest.mark.skipif(
    WEBKIT_DRIVER is None or not MINIBROWSER.exists() or XVFB is None,
    reason="WebKitGTK is not installed (apt-get install webkit2gtk-driver xvfb xauth)",
)
def test_the_page_works_in_webkit(page_file, tmp_path):
    pytest.importorskip("selenium")
    path, result = page_file
    script = tmp_path / "webkit_check.py"
    script.write_text(WEBKIT_SCRIPT)
    done = subprocess.run(
        [XVFB, "-a", sys.executable, str(script), str(path), str(CHECK), str(WEBKIT_DRIVER), str(MINIBROWSER)],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, HOME=str(tmp_path)),
    )
    assert done.returncode == 0, (done.stdout[-1000:], done.stderr[-2000:])
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "failed" not in seen, seen
    assert seen["engine"].startswith("webkit")
    _assert_check(seen, result)
