"""The play window: the game's frame scaled up with crisp pixels, the status bar and the key legend.

:class:`PlayWindow` draws what :class:`~trajarena.play.session.PlaySession` hands it after every env
step (and while paused): the frame, a status bar (recording state, episodes saved and discarded,
the step in the episode, who plays each side, the take-over key), an orange frame and badge while a
human has taken over from the agent, and, over the game, the start, help and pause screens
chosen by :func:`overlay`, with the key map drawn as a table of key caps. It reads no input and
knows nothing of the env or the recording; pygame comes from the caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PlayWindow", "overlay"]

#: What the screen of each paused mode says at its foot.
_FOOTERS = {
    "start": "press any key to start",
    "help": "F1 / Tab: back to the game",
    "pause": "P: resume     Backspace: discard this episode     Esc: quit",
}


def overlay(mode: str, table: Any) -> tuple[str, Any, list[str]] | None:
    """The screen drawn over the game in ``mode`` (``"play"``, ``"start"``, ``"help"``, ``"pause"``).

    ``table`` is the key map table (:meth:`~trajarena.play.keymap.Keymap.table`), shown at start and
    in help; None while playing.

    >>> overlay("play", None) is None, overlay("pause", None)[0]
    (True, 'paused')
    """
    if mode == "start" or mode == "help":
        return ("controls", table, [_FOOTERS[mode]])
    if mode == "pause":
        return ("paused", None, [_FOOTERS[mode]])
    return None


class PlayWindow:
    """The window: the game's frame scaled by an integer (nearest neighbour), a status bar, overlays.

    The window opens at the first frame, sized to it. ``status`` is what the bar shows (``recording``,
    ``saved``, ``discarded``, ``step``, ``players``, and ``takeover``: None, or ``side``, ``active``,
    ``steps`` and ``key`` when a human may take over from an agent); ``overlay`` a screen drawn over
    the game (see :func:`overlay`).

    >>> import numpy as np
    >>> from trajarena.play.keymap import init_pygame
    >>> window = PlayWindow(init_pygame(), scale=2, caption="trajarena play")
    >>> status = {"recording": None, "saved": 0, "discarded": 0, "step": 0, "players": "P1 HUMAN  vs  P2 CPU L3"}
    >>> window.draw(np.zeros((30, 40, 3), np.uint8), status, overlay("pause", None))
    >>> window.size
    (80, 60)
    >>> window.close()
    """

    BG, FG, DIM, RED, SHADE = (18, 18, 24), (235, 235, 235), (150, 150, 160), (230, 40, 40), (8, 8, 14, 210)
    ORANGE = (255, 150, 30)

    def __init__(self, pygame: Any, scale: int, caption: str) -> None:
        self.pg, self.scale = pygame, scale
        self.caption = caption
        self.window = None
        pygame.font.init()
        self.bar = max(22, 9 * scale)
        self.font = pygame.font.Font(None, max(14, int(self.bar * 0.6)))
        self.big = pygame.font.Font(None, max(18, int(self.bar * 0.95)))

    def _open(self, h: int, w: int) -> None:
        pg = self.pg
        pg.display.set_caption(self.caption)
        self.size = (w * self.scale, h * self.scale)
        self.window = pg.display.set_mode((self.size[0], self.size[1] + self.bar))

    def draw(self, frame: np.ndarray | None, status: dict[str, Any], overlay: tuple[str, Any, list[str]] | None) -> None:
        pg = self.pg
        if frame is None:
            return
        frame = np.asarray(frame)
        if frame.ndim == 2 or frame.shape[-1] == 1:
            frame = np.repeat(frame.reshape(frame.shape[0], frame.shape[1], 1), 3, axis=2)
        if self.window is None:
            self._open(frame.shape[0], frame.shape[1])
        surf = pg.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        self.window.blit(pg.transform.scale(surf, self.size), (0, 0))
        takeover = status.get("takeover")
        if takeover is not None and takeover["active"]:
            self._taken_over(takeover)
        if overlay is not None:
            self._overlay(*overlay)
        self._status(status)
        pg.display.flip()

    def _text(self, font: Any, text: str, color: tuple[int, int, int], pos: tuple[int, int], anchor: str = "topleft") -> Any:
        img = font.render(text, True, color)
        rect = img.get_rect(**{anchor: pos})
        self.window.blit(img, rect)
        return rect

    def _taken_over(self, t: dict[str, Any]) -> None:
        """An orange frame round the game and a badge: the human has the agent's controls."""
        pg, (w, h) = self.pg, self.size
        pg.draw.rect(self.window, self.ORANGE, (0, 0, w, h), width=max(3, self.scale))
        img = self.font.render(f"YOU HAVE {t['side']}   {t['key']}: hand back", True, self.ORANGE)
        pad = self.bar // 4
        box = pg.Rect(0, 0, img.get_width() + 2 * pad, img.get_height() + pad)
        box.midbottom = (w // 2, h - 2 * max(3, self.scale))
        pg.draw.rect(self.window, self.BG, box, border_radius=pad)
        self.window.blit(img, img.get_rect(center=box.center))

    def _status(self, s: dict[str, Any]) -> None:
        pg, w, h, bar = self.pg, self.size[0], self.size[1], self.bar
        pg.draw.rect(self.window, self.BG, (0, h, w, bar))
        mid = h + bar // 2
        x = bar // 3
        takeover = s.get("takeover")
        extra = f"   taken over {takeover['steps']}" if takeover is not None else ""
        if s["recording"]:
            pg.draw.circle(self.window, self.RED, (x + bar // 5, mid), max(4, bar // 5))
            x = self._text(self.font, "REC", self.RED, (x + bar // 2, mid), "midleft").right + bar // 3
            text = f"saved {s['saved']}   discarded {s['discarded']}   step {s['step']}{extra}"
            self._text(self.font, text, self.FG, (x, mid), "midleft")
        else:
            text = f"not recording   episodes {s['saved']}   step {s['step']}{extra}"
            self._text(self.font, text, self.DIM, (x, mid), "midleft")
        hint = "   F1 keys"
        if takeover is not None and not takeover["active"]:
            hint = f"   {takeover['key']}: take over" + hint
        color = self.ORANGE if takeover is not None and takeover["active"] else self.DIM
        self._text(self.font, s["players"] + hint, color, (w - bar // 3, mid), "midright")

    def _overlay(self, title: str, table: Any, footer: list[str]) -> None:
        pg, (w, h) = self.pg, self.size
        shade = pg.Surface((w, h), pg.SRCALPHA)
        shade.fill(self.SHADE)
        self.window.blit(shade, (0, 0))
        line = self.font.get_linesize()
        row_h = int(line * 1.45)
        n_rows = (len(table[1]) + 1) if table else 0
        total = self.big.get_linesize() + line // 2 + n_rows * row_h + len(footer) * line + (line // 2 if table else 0)
        y = max(4, (h - total) // 2)
        self._text(self.big, title.upper(), self.FG, (w // 2, y), "midtop")
        y += self.big.get_linesize() + line // 2
        if table:
            head, rows = table
            label_w = max(self.font.size(r[0])[0] for r in rows)
            col_w = [max([self.font.size(head[c])[0]] + [self._caps_width(r[1][c]) for r in rows]) for c in range(len(head))]
            gap = self.bar // 2
            width = label_w + sum(col_w) + gap * len(head)
            x0 = (w - width) // 2
            xs, x = [], x0 + label_w + gap
            for cw in col_w:
                xs.append(x)
                x += cw + gap
            for c, name in enumerate(head):
                self._text(self.font, name, self.DIM, (xs[c], y + row_h // 2), "midleft")
            y += row_h
            for label, cells in rows:
                self._text(self.font, label, self.DIM, (x0 + label_w, y + row_h // 2), "midright")
                for c, cell in enumerate(cells):
                    self._caps(cell, xs[c], y + row_h // 2)
                y += row_h
            y += line // 2
        for text in footer:
            self._text(self.font, text, self.FG, (w // 2, y), "midtop")
            y += line

    def _cap_parts(self, cell: str) -> list[str]:
        if cell.endswith(" / close window"):
            return [*self._cap_parts(cell[: -len(" / close window")]), "+close window"]
        if " / " in cell:
            return [p for part in cell.split(" / ") for p in self._cap_parts(part)]
        if cell.count(" ") == 3:  # "W A S D"
            return cell.split(" ")
        return [cell] if cell else []

    def _caps_width(self, cell: str) -> int:
        pad = max(4, self.bar // 6)
        return sum(self.font.size(p.lstrip("+"))[0] + 3 * pad for p in self._cap_parts(cell))

    def _caps(self, cell: str, x: int, mid: int) -> None:
        """Draw each key of ``cell`` as a key cap (plain text for notes such as 'close window')."""
        pg, pad = self.pg, max(4, self.bar // 6)
        for part in self._cap_parts(cell):
            if part.startswith("+"):
                x = self._text(self.font, part[1:], self.DIM, (x, mid), "midleft").right + 2 * pad
                continue
            img = self.font.render(part, True, self.FG)
            box = pg.Rect(0, 0, img.get_width() + 2 * pad, self.font.get_linesize() + pad // 2)
            box.midleft = (x, mid)
            pg.draw.rect(self.window, (55, 58, 72), box, border_radius=pad)
            pg.draw.rect(self.window, (120, 124, 140), box, width=1, border_radius=pad)
            self.window.blit(img, img.get_rect(center=box.center))
            x = box.right + pad

    def close(self) -> None:
        if self.window is not None:
            self.pg.display.quit()
            self.window = None
