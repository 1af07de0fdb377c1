"""The web widget in a real browser (Debian's Chromium) against a real `parley serve --seed-demo`.

One server for the module: it loads a sentence encoder and embeds the demo knowledge base, which takes a while.
"""

from __future__ import annotations

import html
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import free_port

PARLEY = str(Path(sys.executable).with_name("parley"))
# The repo sits beside ../shared, on a developer's machine and in CI alike.
DEMO_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
START_TIMEOUT_S = 120  # the encoder loads and the seeding embeds a knowledge base
ANSWER_TIMEOUT_MS = 30_000
QUESTION = "How can I strikethrough text in gmail?"


@dataclass
class Server:
    base: str
    process: subprocess.Popen
    log: list[str] = field(default_factory=list)

    def log_tail(self, lines: int = 40) -> str:
        return "".join(self.log[-lines:])


def _start(data_dir: Path, models_dir: Path, port: int) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(
        PARLEY_DATA_DIR=str(data_dir), PARLEY_MODELS_DIR=str(models_dir), PARLEY_DEMO_DATA_DIR=str(DEMO_DATA_DIR)
    )
    process = subprocess.Popen(
        [PARLEY, "serve", "--seed-demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(base=f"http://127.0.0.1:{port}", process=process)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        # Keep reading the whole time, so a full pipe never blocks the server; the lines explain failures.
        for line in process.stdout:
            server.log.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    banner: set[str] = set()
    while "agent key" not in banner and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        match = re.match(r"^\s+([A-Za-z ]+?)\s+: (\S+)", line)
        if match:
            banner.add(match[1])
    if "agent key" not in banner:
        _stop(process)
        raise AssertionError(f"no banner; exit code {process.poll()}\n{server.log_tail()}")
    return server


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if httpx.get(f"{server.base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server never became ready; exit code {server.process.poll()}\n{server.log_tail()}")


def _stop(process: subprocess.Popen) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return None


@pytest.fixture(scope="module")
def parley(tmp_path_factory, models_dir) -> Iterator[Server]:
    server = _start(tmp_path_factory.mktemp("parley"), models_dir, free_port())
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(server.process)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # A fresh context per test: its own localStorage, so no conversation leaks between tests.
    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def demo_widget_key(server: Server) -> str:
    response = httpx.get(f"{server.base}/demo", timeout=10)
    assert response.status_code == 200, f"/demo has no widget: {response.text[:300]}"
    match = re.search(r'data-key="([^"]+)"', response.text)
    assert match, "the demo page embeds no widget key"
    return html.unescape(match[1])


def sse_tokens(body: str) -> str:
    """The text of the `token` events of a Server-Sent Events body, joined."""
    text = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if fields.get("event") == "token":
            text.append(json.loads(fields["data"])["text"])
    return "".join(text)


def open_chat(page: Page) -> None:
    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("dialog")).to_be_visible()


def test_widget_streams_an_answer_with_sources_takes_feedback_and_survives_a_reload(parley, page, tmp_path):
    page.goto(f"{parley.base}/demo")
    open_chat(page)
    with page.expect_response(lambda r: r.url.endswith("/messages"), timeout=ANSWER_TIMEOUT_MS) as sent:
        page.get_by_role("textbox", name="Your message").fill(QUESTION)
        page.get_by_role("textbox", name="Your message").press("Enter")

    bot = page.locator(".parley-msg-bot").first
    sources = bot.locator(".parley-sources .parley-source")
    expect(sources.first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    answer = bot.locator(".parley-text").text_content() or ""
    assert answer.strip(), "the bot bubble is empty"
    # The answer really was streamed, and the bubble shows what the token events carried.
    assert sent.value.headers["content-type"].startswith("text/event-stream")
    assert sse_tokens(sent.value.text()).strip() == answer.strip()
    titles = sources.all_text_contents()
    assert any("gmail" in title.lower() for title in titles), titles
    # The knowledge base quotes HTML (`<strike>`); it must show as text, never become markup.
    expect(page.locator(".parley-root strike")).to_have_count(0)

    helpful = bot.get_by_role("button", name="Helpful", exact=True)
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "true")
    expect(bot.get_by_role("button", name="Not helpful", exact=True)).to_have_attribute("aria-pressed", "false")
    expect(page.locator(".parley-error")).to_be_hidden()

    # The conversation is kept across a reload: the widget reads it back from the API.
    page.reload()
    open_chat(page)
    expect(page.locator(".parley-msg-user, .parley-error:not([hidden])").first).to_be_visible(timeout=15_000)
    error = page.locator(".parley-error")
    assert error.is_hidden(), f"the conversation was not restored: {error.text_content()}"
    expect(page.locator(".parley-msg-user")).to_have_text([QUESTION])
    expect(page.locator(".parley-msg-bot .parley-text")).to_have_text([answer.strip()])
    restored = page.locator(".parley-msg-bot .parley-sources .parley-source").all_text_contents()
    assert any("gmail" in title.lower() for title in restored), restored

    # Escape closes the panel.
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    open_chat(page)
    shot = tmp_path / "widget.png"
    page.screenshot(path=str(shot))
    assert shot.exists() and shot.stat().st_size > 0


class _HostPage(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


def test_widget_on_an_origin_its_key_does_not_allow_gets_no_answer(parley, page):
    key = demo_widget_key(parley)
    port = free_port()
    handler = type(
        "HostPage",
        (_HostPage,),
        {
            "body": (
                "<!doctype html><html lang=en><head><meta charset=utf-8><title>Another site</title></head>"
                f'<body><h1>Not an allowed origin</h1><script src="{parley.base}/widget.js" '
                f'data-key="{html.escape(key)}"></script></body></html>'
            ).encode()
        },
    )
    host = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        open_chat(page)
        page.get_by_role("textbox", name="Your message").fill(QUESTION)
        page.get_by_role("textbox", name="Your message").press("Enter")
        error = page.locator(".parley-error")
        expect(error).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        assert (error.text_content() or "").strip()
        expect(page.locator(".parley-msg-bot")).to_have_count(0)
        assert any("CORS" in line for line in console), console  # the browser, not the widget, refused it
        stored = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('parley:'))")
        assert stored == [], "no conversation may have been started from this origin"
    finally:
        host.shutdown()
        host.server_close()


def _banner_value(server: Server, label: str) -> str:
    for line in server.log:
        match = re.match(rf"^\s+{label}\s+: (\S+)", line)
        if match:
            return match[1]
    raise AssertionError(f"no {label!r} in the banner\n{server.log_tail()}")


def test_make_run_serves_the_dashboards_tier_beside_the_chat_tier(parley):
    """`parley serve` mounts analytics_api beside serving: the dashboard page and its figures on the same port."""
    page = httpx.get(f"{parley.base}/dashboard", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{parley.base}/dashboard/assets/plotly.min.js", timeout=10).status_code == 200
    owner = {"Authorization": f"Bearer {_banner_value(parley, 'owner key')}"}
    overview = httpx.get(f"{parley.base}/v1/analytics/overview", headers=owner, timeout=10)
    assert overview.status_code == 200, overview.text
    assert overview.json()["tenant_id"] == _banner_value(parley, "demo tenant")
    agent = {"Authorization": f"Bearer {_banner_value(parley, 'agent key')}"}
    assert httpx.get(f"{parley.base}/v1/analytics/overview", headers=agent, timeout=10).status_code == 403
    assert httpx.get(f"{parley.base}/readyz", timeout=10).status_code == 200  # the chat tier, same server
