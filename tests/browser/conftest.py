"""Browser tests: a JupyterLab server on 127.0.0.1 and Debian's Chromium driven by Playwright.

The server serves a temporary copy of ``notebooks/`` (JupyterLab may save a notebook it runs; the tracked notebooks
stay untouched) with its own runtime, config, settings and workspace folders, a random token, and the smoke profile
with live widgets (``SRLIB_PROFILE=smoke``, ``SRLIB_INTERACTIVE=1``). Results go to a temporary folder; training runs
use the usual smoke run cache. The server and every kernel it started are stopped when the session ends, also after a
failure. Chromium and Playwright are installed by ``make setup``; when either is missing the tests fail (they never
skip). Screenshots for a human go to ``results/smoke/browser/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "results" / "smoke" / "browser"
SERVER_START_S = 90


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its base URL, token, the folder it serves and its log file."""

    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str) -> object:
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut down every kernel of the server (errors ignored: the server may be gone already)."""
        try:
            for k in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{k['id']}")
        except (OSError, urllib.error.URLError, ValueError):
            pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, lab: Lab | None) -> None:
    """Shut down the kernels through the API, then the server (its process group: SIGTERM, then SIGKILL)."""
    if lab is not None and proc.poll() is None:
        lab.shutdown_kernels()
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def playwright_chromium():
    # module scope: Playwright's sync API keeps an asyncio loop running in this thread until it stops; later test
    # modules (the widgets' debounce) must not see it
    """Playwright's sync API with Debian's Chromium: fails (does not skip) when either is missing."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium package (make setup installs "
                    "it: apt-get install chromium)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"playwright is not installed in {sys.prefix} ({e}); make setup installs it (the test extra)",
                    pytrace=False)
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server serving a copy of the notebooks in the smoke profile with live widgets."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = base / "settings"
    # no autosave, no news or update checks (nothing may reach the network), every cell in the page (no windowing)
    for plugin, value in (("@jupyterlab/docmanager-extension/plugin", {"autosave": False}),
                          ("@jupyterlab/apputils-extension/notification", {"fetchNews": "false",
                                                                            "checkForUpdates": False}),
                          ("@jupyterlab/notebook-extension/tracker", {"windowingMode": "none"})):
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "SRLIB_PROFILE": "smoke", "SRLIB_INTERACTIVE": "1", "SRLIB_RESULTS": str(base / "results"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("MPLBACKEND", None)
    log = base / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.open_browser=False",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={base / 'workspaces'}",
           "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly", "--allow-root"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    running = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}; its log:\n{log.read_text()[-4000:]}",
                            pytrace=False)
            try:
                running.api("GET", "/api/status")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s; its log:\n"
                                f"{log.read_text()[-4000:]}", pytrace=False)
                time.sleep(0.5)
        yield running
    finally:
        _stop(proc, running)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
