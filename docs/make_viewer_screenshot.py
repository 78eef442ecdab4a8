"""Write docs/img/view.png: ``trajarena view --web`` as headless Chromium shows it.

Records two episodes of ``duel`` in which a scripted agent (P1, the expert) fights a random agent
(P2) and a human takes P1 over for a while (scripted keys, ``trajarena play``'s take-over), serves
them with ``trajarena view --web``, jumps to a step as a user does (types it into the time box of
the time panel) and captures the page over the Chrome DevTools protocol once Rerun's web viewer
(WebAssembly) has drawn it; a plain ``chromium --screenshot`` fires before that and gives a blank page.

Needs, beyond the ``view`` extra: Chromium (Debian: ``apt-get install chromium``) and
``websocket-client`` (``pip install websocket-client``).

Run: ``SDL_VIDEODRIVER=dummy PYTHONPATH=src python docs/make_viewer_screenshot.py [--wait 10]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

OUT = Path(__file__).parent / "img" / "view.png"
ROOT = Path(__file__).resolve().parents[1]


def record(folder: Path) -> None:
    """Two episodes: the expert (P1) against a random P2; a human holds P1 from turn 40 to 75 of the first."""
    import pygame

    from trajarena.play import play

    def key(kind: int, k: int) -> pygame.event.Event:
        return pygame.event.Event(kind, key=k)

    script: dict[int, list] = {40: [key(pygame.KEYDOWN, pygame.K_t), key(pygame.KEYDOWN, pygame.K_LEFT)],
                               52: [key(pygame.KEYUP, pygame.K_LEFT), key(pygame.KEYDOWN, pygame.K_x)],
                               60: [key(pygame.KEYUP, pygame.K_x), key(pygame.KEYDOWN, pygame.K_RIGHT)],
                               75: [key(pygame.KEYUP, pygame.K_RIGHT), key(pygame.KEYDOWN, pygame.K_t)]}
    turn = [0]

    def events() -> list:
        turn[0] += 1
        return script.get(turn[0], [])

    play(p1="expert", p2="random", record=str(folder), username="screenshot", step_ratio=6, fps=0, seed=5,
         max_episodes=2, show_help=False, print_keymap=False, events=events,
         settings={"n_players": 2, "characters": ("Kenji", "Longo")})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def capture(url: str, out: Path, wait: float, step: int, size: tuple[int, int] = (1280, 800)) -> None:
    """Open ``url`` in headless Chromium, wait ``wait`` seconds, jump to ``step``, save a PNG (DevTools protocol)."""
    import websocket  # websocket-client

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        sys.exit("no Chromium found: apt-get install chromium")
    port = free_port()
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync", "--no-first-run",
                                    f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
                                    "--remote-allow-origins=*", f"--window-size={size[0]},{size[1]}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                    break
                except OSError:
                    time.sleep(0.2)
            ws = websocket.create_connection(next(t for t in tabs if t["type"] == "page")["webSocketDebuggerUrl"],
                                             timeout=60)
            calls = [0]

            def call(method: str, **params: object) -> dict:
                calls[0] += 1
                ws.send(json.dumps({"id": calls[0], "method": method, "params": params}))
                while True:
                    message = json.loads(ws.recv())
                    if message.get("id") == calls[0]:
                        return message

            call("Page.enable")
            call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1, mobile=False)
            call("Page.navigate", url=url)
            time.sleep(wait)
            x, y = size[0] - 50, size[1] - 14  # the time box at the right end of the collapsed time panel
            for kind, count in (("mousePressed", 1), ("mouseReleased", 1), ("mousePressed", 2), ("mouseReleased", 2)):
                call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=count)
            call("Input.dispatchKeyEvent", type="keyDown", key="a", code="KeyA", modifiers=2, windowsVirtualKeyCode=65)
            call("Input.dispatchKeyEvent", type="keyUp", key="a", code="KeyA", modifiers=2, windowsVirtualKeyCode=65)
            call("Input.insertText", text=str(step))
            for kind in ("keyDown", "keyUp"):
                call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13)
            time.sleep(2)
            shot = call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["result"]["data"]))
            print("wrote", out)
        finally:
            browser.terminate()
            browser.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=10.0, help="seconds for the viewer to load and draw")
    parser.add_argument("--step", type=int, default=58, help="where the time cursor stands")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        record(data)
        port, data_port = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "300"}
        server = subprocess.Popen([sys.executable, "-m", "trajarena.cli.app", "view", str(data), "--web", "--no-browser",
                                   "--no-progress", "--port", str(port), "--data-port", str(data_port)],
                                  stdout=subprocess.PIPE, text=True, env=env)
        try:
            url = None
            while url is None:
                line = server.stdout.readline()
                if not line:
                    sys.exit("the viewer stopped before it served")
                if line.startswith("web viewer:"):
                    url = line.split(" ", 2)[2].strip()
            capture(url, OUT, args.wait, args.step)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)


if __name__ == "__main__":
    main()
