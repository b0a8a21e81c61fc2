"""Notebooks 00, 01, 03 and 04 in JupyterLab (headless Chromium, smoke profile, live widgets): every cell runs
without an error, every explorer renders (no "Error displaying widget"), its dropdowns show their choice, its figure
is shown at its own size, and moving a slider (arrow keys, as a user does) or changing a dropdown redraws the figure:
the image bytes change. Notebook 00 is then saved, its kernel shut down and the page reloaded: the static copy of
the explorer's figure is shown under "model not found".

Screenshots of each explorer before and after each change go to ``results/smoke/browser/``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest

#: Longest time for "run all cells" of one notebook (smoke profile; training runs are cached between sessions).
RUN_ALL_S = 240
#: The notebook that is also saved, closed and reopened (its explorer's static copy must show).
REOPENED = "00_degradation_explorer"
#: Longest wait for an explorer's first figure, and for a redraw after a change (debounced redraws wait DEBOUNCE_S
#: after the last change first).
REDRAW_S = 30


@dataclass(frozen=True)
class Action:
    """A change a user makes in an explorer: ``kind`` "slider" (press ``key`` ``times`` on the slider's handle) or
    "select" (choose the option labelled ``value``), on the control whose description is ``label``."""

    kind: str
    label: str
    value: str = ""
    key: str = ""
    times: int = 0
    #: treat every redraw as slow (as a paper-size model makes it) and check the burst of presses is drawn once
    debounced: bool = False


NOTEBOOKS = {
    "00_degradation_explorer": (Action("slider", "width σ", key="ArrowLeft", times=4, debounced=True),
                                Action("select", "kernel", "aniso")),
    "01_cde_training": (Action("select", "locations", "8"), Action("select", "locations", "all"),
                        Action("select", "layer", "head"), Action("select", "layer", "output")),
    "03_pcl_training": (Action("slider", "sharpen f max", key="ArrowLeft", times=5),
                        Action("select", "kernel size", "3")),
    "04_blind_baselines": (Action("select", "layer", "q"), Action("select", "colour by", "noise")),
}

_OPEN = """async (path) => {
    const app = window.jupyterapp;
    const nb = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
    await nb.context.ready;
    await nb.sessionContext.ready;
    return nb.sessionContext.session !== null && nb.sessionContext.session.kernel !== null;
}"""

_RUN_ALL = """async (limit_ms) => {
    const app = window.jupyterapp;
    const nb = app.shell.currentWidget;
    const run = app.commands.execute('notebook:run-all-cells');
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('run all: timed out')), limit_ms));
    await Promise.race([run, timeout]);
    const cells = nb.content.model.cells;
    const out = [];
    for (let i = 0; i < cells.length; i++) {
        const c = cells.get(i);
        if (c.type !== 'code' || c.sharedModel.getSource().trim() === '') continue;
        const errors = c.outputs.toJSON().filter(o => o.output_type === 'error')
            .map(o => o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n'));
        out.push({index: i, count: c.executionCount, errors});
    }
    return out;
}"""

_EXECUTE = """async (code) => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    const future = kernel.requestExecute({code, store_history: false});
    let text = '';
    future.onIOPub = msg => {
        if (msg.header.msg_type === 'stream') text += msg.content.text;
        if (msg.header.msg_type === 'error') text += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
    };
    await future.done;
    return text;
}"""

#: Kernel code: the explorer on the page (the notebook does not name it) with every redraw counted as slow.
_SLOW_EXPLORER = """import gc
_srlib_explorer = next(o for o in gc.get_objects() if type(o).__name__ == "Explorer")
_srlib_explorer._redraw.slow_s = 0.0
print(_srlib_explorer.redraws)"""

_SELECTED = """el => Array.from(el.querySelectorAll('select')).map(s =>
    [s.parentElement.querySelector('label') ? s.parentElement.querySelector('label').textContent : '',
     s.selectedIndex, s.selectedIndex >= 0 ? s.options[s.selectedIndex].text : ''])"""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _open_lab(browser, lab):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab?token={lab.token}&reset")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started !== undefined")
    page.evaluate("() => window.jupyterapp.started")
    return page


def _run_all(page, name):
    assert page.evaluate(_OPEN, f"{name}.ipynb"), f"{name}: no kernel started"
    t0 = time.perf_counter()
    cells = page.evaluate(_RUN_ALL, RUN_ALL_S * 1000)
    print(f"{name}: all cells ran in {time.perf_counter() - t0:.1f} s")
    errors = [f"cell {c['index']}: {_ANSI.sub('', e)}" for c in cells for e in c["errors"]]
    assert not errors, f"{name}: a cell failed (a training or set-up cell is not a widget problem):\n" + "\n".join(
        errors)
    not_run = [c["index"] for c in cells if c["count"] is None]
    assert not not_run, f"{name}: cells {not_run} did not run"


def _control(explorer, kind, label):
    cls = ".widget-slider" if kind == "slider" else ".widget-dropdown"
    box = explorer.locator(cls).filter(has=explorer.page.locator("label", has_text=re.compile(f"^{re.escape(label)}$")))
    assert box.count() == 1, f"no single {kind} labelled {label!r} in the explorer"
    return box.locator(".noUi-handle" if kind == "slider" else "select")


#: What JupyterLab shows for a widget it cannot display: the renderer's message, and ipywidgets 8's error widget
#: (a broken-page icon above "Click to show javascript error.").
_WIDGET_ERRORS = """() => {
    const nb = document.querySelectorAll('.jp-Notebook');
    const text = Array.from(nb).map(n => n.innerText).join(' ');
    const out = [];
    for (const m of text.matchAll(/Error displaying widget[^\\n]*/g)) out.push(m[0]);
    for (const e of document.querySelectorAll('.jp-Notebook .jupyter-widgets-error-widget')) out.push(
        'ipywidgets error widget: ' + e.innerText.trim());
    return out;
}"""

_SHOWN = """() => {
    const img = document.querySelector('.jp-Notebook .srlib-explorer img');
    return (img !== null && img.complete && img.naturalWidth > 0)
        || document.querySelector('.jp-Notebook .jupyter-widgets-error-widget') !== null
        || Array.from(document.querySelectorAll('.jp-Notebook'))
               .some(n => n.innerText.includes('Error displaying widget'));
}"""


def _assert_no_widget_error(page, name):
    errors = page.evaluate(_WIDGET_ERRORS)
    assert not errors, f"{name}: a widget cannot be displayed: {errors}"


def _wait_for_explorer(page, name):
    """Wait until the explorer shows its figure or the page shows a widget error; fail on the latter."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # imported here: see the playwright fixture

    try:
        page.wait_for_function(_SHOWN, timeout=REDRAW_S * 1000)
    except PlaywrightTimeout:
        pytest.fail(f"{name}: no explorer figure appeared within {REDRAW_S} s of the last cell", pytrace=False)
    _assert_no_widget_error(page, name)


def _wait_for_new_image(page, img, old_src, what):
    """Wait until the figure changed and then stayed the same for a second (a fast explorer draws every arrow-key
    press; a slow one draws once, after a pause)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("([el, src]) => el.src !== src && el.complete && el.naturalWidth > 0",
                               arg=[img.element_handle(), old_src], timeout=REDRAW_S * 1000)
    except PlaywrightTimeout:
        pytest.fail(f"{what}: the figure was not redrawn within {REDRAW_S} s", pytrace=False)
    src = img.get_attribute("src")
    while True:
        page.wait_for_timeout(1000)
        now = img.get_attribute("src")
        if now == src:
            return
        src = now


def _failure_screenshot(page, path):
    """The explorer's cell (its source calls ``..._explorer(``) for a human to look at, else the page."""
    try:
        cell = page.locator(".jp-NotebookPanel:visible .jp-Cell").filter(has_text=re.compile(r"_explorer\(")).first
        cell.scroll_into_view_if_needed(timeout=5000)
        cell.screenshot(path=path, timeout=10_000)
    except Exception:  # noqa: BLE001 (a screenshot must not hide the failure)
        page.screenshot(path=path)


def _assert_own_size(img, what):
    """The figure is shown at (nearly) its own size, neither shrunk (smaller text) nor stretched (blurred)."""
    natural, shown = img.evaluate("el => [el.naturalWidth, el.getBoundingClientRect().width]")
    assert natural <= 960 and 0.95 * natural <= shown <= natural + 1, (
        f"{what}: figure {natural} px wide shown at {shown:.0f} px")


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_explorer_renders_and_reacts(name, playwright_chromium, lab, screenshots):
    page = _open_lab(playwright_chromium, lab)
    try:
        _run_all(page, name)
        notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
        _wait_for_explorer(page, name)
        explorers = notebook.locator(".srlib-explorer")
        assert explorers.count() == 1, f"{name}: expected one explorer, found {explorers.count()}"
        explorer = explorers.first
        explorer.scroll_into_view_if_needed()
        img = explorer.locator("img")
        status = explorer.locator(".widget-html").first.inner_text()
        assert "Error" not in status, f"{name}: the explorer shows an error: {status}"
        _assert_own_size(img, name)
        # the static copy that follows the live explorer is hidden while the explorer is live
        cell = notebook.locator(".jp-Cell").filter(has=page.locator(".srlib-explorer"))
        copies = cell.locator(".jp-OutputArea-child .jp-RenderedImage img")
        assert copies.count() == 1 and not copies.first.is_visible(), f"{name}: the static copy is shown twice"
        explorer.screenshot(path=screenshots / f"{name}_0_initial.png")
        for step, action in enumerate(NOTEBOOKS[name], start=1):
            before_src, before_png = img.get_attribute("src"), img.screenshot()
            control = _control(explorer, action.kind, action.label)
            if action.debounced:
                drawn = page.evaluate(_EXECUTE, _SLOW_EXPLORER)
                assert drawn.strip().isdigit(), drawn
            if action.kind == "slider":
                control.focus()
                for _ in range(action.times):  # each press is a change; a slow explorer redraws once at the end
                    control.press(action.key)
            else:
                control.select_option(label=action.value)
            _wait_for_new_image(page, img, before_src, f"{name}, {action}")
            after_png = img.screenshot()
            explorer.screenshot(path=screenshots / f"{name}_{step}_{action.kind}_{action.label}.png")
            assert after_png != before_png, f"{name}: the figure did not change after {action}"
            _assert_own_size(img, f"{name} after {action}")
            if action.debounced:  # the presses in a row were drawn once, after the last
                now = page.evaluate(_EXECUTE, "print(_srlib_explorer.redraws)")
                assert int(now) == int(drawn) + 1, f"{name}: {action.times} presses drew {int(now) - int(drawn)} times"
            status = explorer.locator(".widget-html").first.inner_text()
            assert "Error" not in status, f"{name}: {action} gave an error: {status}"
            # every dropdown shows its choice (a choice whose value is None used to show an empty box)
            for label, index, text in explorer.evaluate(_SELECTED):
                assert index >= 0 and text.strip(), f"{name}: dropdown {label!r} shows an empty box after {action}"
        _assert_no_widget_error(page, name)
        if name == REOPENED:
            _reopen_shows_the_static_copy(page, name, screenshots)
    except BaseException:
        _failure_screenshot(page, screenshots / f"{name}_FAILED.png")
        raise
    finally:
        page.close()
        lab.shutdown_kernels()  # free the CPU and memory for the next notebook


def _reopen_shows_the_static_copy(page, name, screenshots):
    """Save, shut the kernel down, reload the page: the widget cannot be shown any more ("model not found"), the
    static copy of its first figure is."""
    page.evaluate("""async () => {
        const app = window.jupyterapp;
        const nb = app.shell.currentWidget;
        await app.commands.execute('docmanager:save');
        await nb.sessionContext.shutdown();
    }""")
    page.reload()
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started !== undefined")
    page.evaluate("() => window.jupyterapp.started")
    page.evaluate(_OPEN, f"{name}.ipynb")
    notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
    notebook.get_by_text("Error displaying widget: model not found").first.wait_for()
    cell = notebook.locator(".jp-Cell").filter(has_text="srlib.widgets.degradation_explorer(")
    assert cell.count() == 1 and "Error displaying widget: model not found" in cell.inner_text()
    copy = cell.locator(".jp-OutputArea-child .jp-RenderedImage img")
    assert copy.count() == 1
    copy.first.scroll_into_view_if_needed()
    assert copy.first.is_visible(), f"{name}: the static copy of the explorer's figure is not shown after reopening"
    assert copy.first.evaluate("el => el.naturalWidth") > 100
    cell.screenshot(path=screenshots / f"{name}_reopened.png")
