"""Take the README screenshot: the app answering a broad question, with its evidence table.

    .venv/bin/python docs/screenshot.py [--question "..."] [--output docs/screenshot.png]

Starts ``python app.py`` on a free local port (the index of ``LBP_INDEX``, built if missing),
asks the question in headless Chromium (``/usr/bin/chromium``, as in the browser tests),
waits for the finished answer and saves a 1366 px wide screenshot of the page with the
chat scrolled to the answer's first line.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUESTION = "Is exercise therapy effective for chronic low back pain?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SystemExit("app.py did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--height", type=int, default=1000, help="viewport height in pixels")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "LBP_PORT": str(port), "HF_HUB_OFFLINE": "1", "LBP_FEEDBACK_DB": os.devnull}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env)
    try:
        _wait_until_up(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1366, "height": args.height})
            page.goto(url)
            box = page.locator("#lbp-question textarea")
            box.wait_for()
            box.fill(args.question)
            box.press("Enter")
            page.locator("#lbp-chat .lbp-answer:not(.lbp-streaming) .lbp-ev-table").wait_for(timeout=60_000)
            page.wait_for_timeout(1500)  # the chat scrolls itself to the end first
            # The chat scrolls inside its own box: bring the answer's first line to its top.
            page.locator("#lbp-chat .lbp-answer").first.evaluate(
                """el => {
                    let box = el.parentElement;
                    while (box && box.scrollHeight <= box.clientHeight) box = box.parentElement;
                    if (box) box.scrollTop += el.getBoundingClientRect().top - box.getBoundingClientRect().top - 32;
                }"""
            )
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.output))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
