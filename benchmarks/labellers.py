"""Labelling-app benchmark: N labellers open their pages at the same moment, then label.

    python benchmarks/labellers.py                    # N = 1, 10, 20 on SQLite
    python benchmarks/labellers.py --counts 1,10,20,30 --seconds 30
    python benchmarks/labellers.py --pool 0                 # no pre-started kernels
    python benchmarks/labellers.py --think 1                # each labeller reads for 1 s

For each N it starts `widgetal serve` (real Voila) on a fresh SQLite project, opens N headless
Chromium pages at once (Debian's /usr/bin/chromium; never a downloaded browser), and prints:
page-ready time p50 / max (navigation until the first text shows; and until the page's HTML is
complete, the server's part), click-to-next-text p50 / p95
while all N label for ``--seconds`` (back to back, or ``--think`` seconds after each text
appears, as people reading do), labels/s, memory per kernel (resident set of the kernel
processes), items labelled twice, and how many kernels are still alive 10 s after every page
closed (each page is closed as a tab is, so Voila's page asks for its kernel's shutdown; the
pool's kernels are meant to stay and are counted apart). With ``--pool P`` (serve's option) the
pages open once P kernels are started. Figures only; the targets live in the README.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import typer

from widgetal import Queue
from widgetal.serve import DEFAULT_POOL

app = typer.Typer(add_completion=False)
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TEXT = ".widgetal-text"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kernels(server: int) -> list[int]:
    """PIDs of the kernels (one per page) started under this server; other jobs' kernels on
    the machine are not counted. (Kernels get sessions of their own, so ancestry decides.)"""
    parent, kernels = {}, []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            parent[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: ppid
            if b"ipykernel_launcher" in cmd or b"widgetal.kernel" in cmd:  # widgetal's spec
                kernels.append(int(proc.name))

    def under(pid: int) -> bool:
        while pid > 1:
            if pid == server:
                return True
            pid = parent.get(pid, 0)
        return False

    return [k for k in kernels if under(k)]


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


_HZ = os.sysconf("SC_CLK_TCK")


def _server_ticks(server: int) -> int:
    """CPU ticks of the Voila process and its kernels, live ones only (closed kernels' ticks
    are gone with them, so this is read while all pages are open)."""
    return _cpu_ticks([server, *_kernels(server)])


def _browser_ticks() -> int:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0]
                if argv0.endswith(b"/chromium"):  # Debian's wrapper runs /usr/lib/chromium/
                    pids.append(int(proc.name))
            except OSError:
                continue
    return _cpu_ticks(pids)


def _driver_ticks() -> int:
    """This benchmark's own CPU: its Python process and Playwright's driver (node), which
    relay every page's events; on a real labeller's machine neither exists."""
    pids = [os.getpid()]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"run-driver" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return _cpu_ticks(pids)


def _wait_until_quiet(server: int, timeout: float = 300) -> None:
    """Until the server's kernels stop using CPU: "pool filled" in Voila's log means started,
    not yet through the notebook's imports (up to where each waits for its page)."""
    deadline = time.monotonic() + timeout
    before = _cpu_ticks(_kernels(server))
    while time.monotonic() < deadline:
        time.sleep(2)
        now = _cpu_ticks(_kernels(server))
        if now - before < 10:  # under 0.1 CPU-second in 2 s, all kernels together
            return
        before = now


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _pss_mb(pid: int) -> float:
    """Proportional set size: shared library pages split among the processes mapping them,
    so N kernels' PSS adds up to what they cost the server together."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def _label_page(browser, base: str, name: str, seconds: float, think: float,
                      ready: list, clicks: list, html: list, assets: list) -> None:
    context = await browser.new_context(viewport={"width": 1000, "height": 700})
    page = await context.new_page()
    fetched: list[int] = []
    page.on("requestfinished", lambda r: fetched.append(1))
    t0 = time.perf_counter()
    response = await page.goto(f"{base}?labeller={name}", timeout=300_000, wait_until="commit")
    # The page's HTML ends once Voila has run the notebook in the page's kernel: the server's
    # part; from there on the browser loads the front end and draws the widgets.
    await response.finished()
    html.append(time.perf_counter() - t0)
    await page.wait_for_function(
        "sel => { const e = document.querySelector(sel); return e && e.innerText.trim() }",
        # every 50 ms, not on every animation frame (the default): 20 pages polling at 60 Hz
        # would spend the browser's CPU on the benchmark itself
        arg=TEXT, timeout=300_000, polling=50,
    )
    ready.append(time.perf_counter() - t0)
    assets.append(len(fetched))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            ms = await page.evaluate(
                """([sel]) => new Promise((resolve, reject) => {
                    const el = document.querySelector(sel); const before = el.innerText;
                    const timer = setTimeout(() => reject(new Error('timeout')), 20000);
                    const t0 = performance.now();
                    const obs = new MutationObserver(() => { if (el.innerText !== before) {
                        obs.disconnect(); clearTimeout(timer); resolve(performance.now() - t0); }});
                    obs.observe(el, {subtree: true, childList: true, characterData: true});
                    document.querySelector('.widgetal-label-1').click();
                })""",
                [TEXT],
            )
        except Exception:  # noqa: BLE001 - queue empty or page gone: stop this labeller
            break
        clicks.append(ms)
        await asyncio.sleep(think)  # a person reads the next text before answering
    await page.close(run_before_unload=True)  # as a labeller closes the tab (Voila's shutdown)
    await asyncio.sleep(1)  # let the shutdown request leave before the context goes
    await context.close()


async def _open_pages(n: int, base: str, seconds: float, think: float, ready: list,
                      clicks: list, html: list, assets: list) -> None:
    """N labellers in one headless Chromium, one browser context (own cookies, own page) each:
    a browser per labeller would load this 2-core server with N browsers, which the real
    labellers' machines carry instead."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        results = await asyncio.gather(
            *(_label_page(browser, base, f"l{i}", seconds, think, ready, clicks, html, assets)
              for i in range(n)),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, Exception):
                print(f"  a page failed: {type(r).__name__}: {str(r).splitlines()[0]}")
        await browser.close()


def _run(n: int, seconds: float, workdir: Path, pool: int, think: float) -> None:
    url = f"sqlite:///{workdir / f'bench{n}.db'}"
    q = Queue(url, labels=["negative", "positive"])
    q.add([f"benchmark text number {i}" for i in range(20_000)])
    port = _free_port()
    exe = shutil.which("widgetal") or sys.executable
    cmd = [exe] if exe.endswith("widgetal") else [exe, "-m", "widgetal.cli"]
    cmd += ["serve", "--port", str(port), "--db", url, "--models-dir", str(workdir / "models"),
            "--pool", str(pool)]
    log = open(workdir / f"voila{n}.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("widgetal serve did not start")
            time.sleep(0.3)
        filled = f"is filled with {pool} kernel(s)"  # the pool is full before pages open
        while pool and filled not in (workdir / f"voila{n}.log").read_text():
            if time.monotonic() > deadline:
                raise TimeoutError("the kernel pool did not fill")
            time.sleep(0.3)
        _wait_until_quiet(server.pid)  # pooled kernels have run the notebook up to the page
        load_before = os.getloadavg()[0]
        ready: list[float] = []
        clicks: list[float] = []
        html: list[float] = []
        assets: list[int] = []
        pages = threading.Thread(target=lambda: asyncio.run(
            _open_pages(n, f"http://127.0.0.1:{port}/", seconds, think, ready, clicks, html,
                        assets)))
        pages.start()
        peak_kernels: list[int] = []
        rss: list[float] = []
        pss: list[float] = []
        # CPU-seconds until every page is ready: the server's share (Voila and its kernels)
        # against the browser's, which real labellers' own machines would carry.
        server_cpu, browser_cpu = _server_ticks(server.pid), _browser_ticks()
        driver_cpu = _driver_ticks()
        load_cpu = None
        while pages.is_alive():
            if load_cpu is None and len(ready) == n:
                load_cpu = ((_server_ticks(server.pid) - server_cpu) / _HZ,
                            (_browser_ticks() - browser_cpu) / _HZ,
                            (_driver_ticks() - driver_cpu) / _HZ)
            live = _kernels(server.pid)
            if len(live) >= len(peak_kernels):
                peak_kernels = live
                rss = [_rss_mb(k) for k in live]
                pss = [_pss_mb(k) for k in live]
            time.sleep(1)
        pages.join()
        closed_at = time.monotonic()
        time.sleep(10)
        left = _kernels(server.pid)
        labelled = q.labelled()
        twice = int(labelled.item_id.duplicated().sum())
        if not ready or not clicks:
            print(f"N={n:>2}: {len(ready)} of {n} pages ready within 300 s; "
                  f"{len(clicks)} clicks; kernels alive 10 s after closing: {len(left)}")
            return
        rq = statistics.quantiles(clicks, n=20) if len(clicks) >= 20 else [float("nan")] * 19
        print(
            f"N={n:>2}: page ready p50 {statistics.median(ready):.1f} s, max {max(ready):.1f} s; "
            f"click-to-next p50 {statistics.median(clicks):.0f} ms, p95 {rq[18]:.0f} ms; "
            f"{len(clicks) / seconds:.1f} labels/s; kernel RSS "
            f"{statistics.median(rss) if rss else float('nan'):.0f} MB, PSS "
            f"{statistics.median(pss) if pss else float('nan'):.0f} MB "
            f"({len(peak_kernels)} kernels); labelled twice: {twice}; "
            f"kernels alive {time.monotonic() - closed_at:.0f} s after closing: "
            f"{max(len(left) - pool, 0)} beyond the pool of {pool} ({len(left)} in all)"
        )
        print(f"       HTML complete (Voila ran the notebook) p50 {statistics.median(html):.1f} s, "
              f"max {max(html):.1f} s; {statistics.median(assets):.0f} requests per page")
        if load_cpu is not None:
            print(f"       CPU until every page was ready: server (Voila + kernels) "
                  f"{load_cpu[0]:.0f} s, browser {load_cpu[1]:.0f} s, the benchmark's own "
                  f"driver {load_cpu[2]:.0f} s; load average before the run {load_before:.1f}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        q.engine.dispose()


@app.command()
def main(
    counts: str = typer.Option("1,10,20", help="Numbers of labellers opening pages at once."),
    seconds: float = typer.Option(30, help="How long every page labels."),
    pool: int = typer.Option(DEFAULT_POOL, help="widgetal serve --pool: pre-started kernels "
                             "(0: off). The pages open once the pool is full."),
    think: float = typer.Option(0, help="Seconds each labeller waits after a text appears "
                                "before the next click (0: click as fast as the app allows)."),
):
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(c) for c in counts.split(",")]:
            _run(n, seconds, Path(tmp), pool, think)


if __name__ == "__main__":
    app()
