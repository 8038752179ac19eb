"""What the front shows inside the RDP window: the password prompt (user name, a password
field of bullets, an error line) and the status card for a session that cannot be used yet.
Rendered with Pillow into one card image; :mod:`pamcore_rdp.paint` sends it as bitmaps.

The password itself never leaves this object except through :meth:`PasswordPrompt.submit`,
and the image holds one bullet per character.
"""

from __future__ import annotations

from functools import cache

from PIL import Image, ImageDraw, ImageFont

#: Colours (RGB); the end-to-end tests read them back from screenshots.
BACKGROUND = (32, 44, 64)
CARD = (245, 245, 245)
TITLE_BAR = (31, 58, 95)
TITLE_TEXT = (255, 255, 255)
TEXT = (30, 30, 30)
FIELD = (255, 255, 255)
FIELD_BORDER = (120, 120, 120)
ERROR = (176, 0, 32)

CARD_WIDTH = 480
CARD_HEIGHT = 240
TITLE_HEIGHT = 40
BULLET = "\u2022"
#: Characters a password may hold: printable, no control characters.
MAX_PASSWORD = 128


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def card_origin(width: int, height: int) -> tuple[int, int]:
    """Top-left corner of the card centred on a ``width`` x ``height`` desktop (multiples
    of 4, so every tile row stays aligned)."""
    return max(0, (width - CARD_WIDTH) // 2) & ~3, max(0, (height - CARD_HEIGHT) // 2)


def background(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), BACKGROUND)


def _card(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (CARD_WIDTH, CARD_HEIGHT), CARD)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, CARD_WIDTH - 1, TITLE_HEIGHT - 1), fill=TITLE_BAR)
    draw.text((16, 10), title, fill=TITLE_TEXT, font=_font(18))
    return image, draw


def status_card(lines: list[str]) -> Image.Image:
    """A card with a message and no field: the session waits, or the connection ends."""
    image, draw = _card("pamcore")
    y = TITLE_HEIGHT + 24
    for line in lines:
        draw.text((24, y), line[:60], fill=TEXT, font=_font(16))
        y += 26
    return image


class PasswordPrompt:
    """The prompt's state: the characters typed so far, the error line, the tries left."""

    def __init__(self, username: str, target: str | None, tries: int = 3) -> None:
        self.username = username
        self.target = target
        self.tries_left = tries
        self.error = ""
        self._typed: list[str] = []

    def type(self, char: str) -> bool:
        """Apply one character from :class:`pamcore_rdp.keys.Keyboard`; True on Enter."""
        if char == "\r":
            return True
        if char == "\b":
            if self._typed:
                self._typed.pop()
        elif char.isprintable() and len(self._typed) < MAX_PASSWORD:
            self._typed.append(char)
        return False

    def submit(self) -> str:
        """The password typed (the field is emptied) and one try used."""
        password = "".join(self._typed)
        self._typed.clear()
        self.tries_left -= 1
        return password

    def render(self) -> Image.Image:
        image, draw = _card("pamcore")
        y = TITLE_HEIGHT + 16
        where = f" to {self.target}" if self.target else ""
        draw.text((24, y), f"Sign in{where}"[:56], fill=TEXT, font=_font(16))
        draw.text((24, y + 30), f"User: {self.username}"[:56], fill=TEXT, font=_font(16))
        draw.text((24, y + 66), "Password:", fill=TEXT, font=_font(16))
        field = (120, y + 60, CARD_WIDTH - 24, y + 90)
        draw.rectangle(field, fill=FIELD, outline=FIELD_BORDER)
        bullets = BULLET * min(len(self._typed), 28)
        draw.text((field[0] + 8, field[1] + 6), bullets, fill=TEXT, font=_font(16))
        if self.error:
            draw.text((24, y + 104), self.error[:56], fill=ERROR, font=_font(16))
        draw.text(
            (24, CARD_HEIGHT - 30), "Press Enter to sign in.", fill=FIELD_BORDER, font=_font(14)
        )
        return image
