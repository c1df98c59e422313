"""Text quality: is this caption or description worth teaching from?

Signals:

- `words`: number of words (runs of letters or digits). A one-word caption
  restates a label at best.
- `letter_ratio`: share of the non-space characters that are letters. Markup,
  file names and encoding debris ("\\x00\\x00", "####", "IMG_2041.JPG") score low.

Empty or whitespace-only text (or text with no word at all) forces the score to 0.
"""

from __future__ import annotations

import re
from pathlib import Path

from xmd_cli.quality.combine import QualityResult, Scorer, Signal

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script

WORDS = Signal("words", 3.0, 3.0, 1.0, "words", "number of words", scale="log2")
LETTER_RATIO = Signal("letter_ratio", 0.6, 20.0, 1.0, "share", "share of non-space characters that are letters")


def _read(item) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Path):
        from xmd_cli.errors import XmdError

        try:
            return item.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise XmdError(f"{item}: cannot read text ({e}); save it as UTF-8 text") from None
    raise TypeError(f"the text scorer takes a str (the text) or a Path, got {type(item).__name__}")


class TextScorer(Scorer):
    """Scores text; a `str` is the text itself, a `Path` is read as UTF-8."""

    modality = "text"
    DEFAULTS = (WORDS, LETTER_RATIO)

    def measure(self, item) -> dict[str, float] | QualityResult:
        text = self.load(item, _read)
        if isinstance(text, QualityResult):
            return text
        if not text.strip():
            return self.failure("empty text", {"words": 0.0})
        words = _WORD.findall(text)
        if not words:
            return self.failure(f"no words in the text {text.strip()[:40]!r}", {"words": 0.0})
        visible = [c for c in text if not c.isspace()]
        letters = sum(c.isalpha() for c in visible)
        return {"words": float(len(words)), "letter_ratio": letters / len(visible)}
