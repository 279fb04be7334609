"""Reading the answer out of what a model wrote: the letter of a multiple-choice answer, the final
number of a math answer. Pure functions of text, no I/O.

Models rarely answer with the bare letter or number; these accept what they do write ("The answer is
(B).", "**C**", "b) Paris", the text of one choice; "#### 1,234", "The answer is $18.", \\boxed{42}, or
else the last number), and return None when no answer can be read, so an unreadable answer scores 0.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase


def letters_for(count: int) -> str:
    """The labels of ``count`` choices: ``ABCD`` for four."""
    return LETTERS[:count]


# --- letters ------------------------------------------------------------------------------------------

# "the answer is (B)", "Answer: **C**", "correct option: D", "the right choice would be 'A'"
_ANSWER_PHRASE = re.compile(
    r"(?i:\b(?:the\s+)?(?:correct\s+|right\s+|final\s+|best\s+)?answer(?:\s+to\s+(?:this|the)\s+question)?)"
    r"(?i:\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be))?"
    r"(?i:\s+(?:option|choice|letter))?\s*[:=\-–]?\s*"
    r"(?P<open>[\(\[\*\"'“‘`]*)\s*(?P<letter>[A-Za-z])(?P<close>[\)\]\*\"'”’`]*)(?![A-Za-z0-9'’])")
# "option B is correct", "choice (c) is right", "B is the correct answer"
_OPTION_CORRECT = re.compile(
    r"(?<![\w'’])(?:(?i:option|choice)\s+)?[\(\[]?(?P<letter>[A-Za-z])[\)\]]?"
    r"(?i:\s+is\s+(?:the\s+)?(?:correct|right|true)\b)")
# the whole answer is one letter: "B", "(b).", "**C**"
_ONLY_LETTER = re.compile(r"^[\s\*\(\[\"'“‘`]*(?P<letter>[A-Za-z])[\s\*\)\]\.\:,;!\"'”’`]*$")
# the answer opens with a label: "B. Paris", "(C) 42", "d) none", "[A]"
_LABEL_FIRST = re.compile(r"^[\s\*\"'`]*(?:(?P<br>[\(\[])\s*(?P<l1>[A-Za-z])\s*[\)\]]|(?P<l2>[A-Z])\s*[\.\):]"
                          r"|(?P<l3>[a-z])\s*\))")
# the answer opens with a bare capital and a space: "B Paris"
_LETTER_FIRST = re.compile(r"^[\s\*\"'`]*(?P<letter>[A-Z])\s+(?P<rest>\S.*)$", re.DOTALL)
# a label anywhere: "(B)", "[c]", "B)"
_BRACKETED = re.compile(r"[\(\[](?P<l1>[A-Za-z])[\)\]]|(?<![\w(\[])(?P<l2>[A-Z])\)")
# a capital standing alone: "... so B." (unless it is the word "A" or "I": `_is_word`)
_LONE_CAPITAL = re.compile(r"(?<![\w'’\-])(?P<letter>[A-Z])(?![\w'’\-])")


def _is_word(text: str, m: re.Match[str]) -> bool:
    """Whether a lone capital is the word it spells: the pronoun "I" before a lowercase word, or the
    article "A" opening a sentence before one ("A planet ...", but not "A or B")."""
    letter, after, before = m.group("letter"), text[m.end():], text[:m.start()]
    follows = re.match(r"\s+([a-z]+)", after)
    if letter == "I":
        return bool(follows)
    if letter != "A" or not follows or follows.group(1) in ("or", "and", "nor"):
        return False
    return not before.strip() or bool(re.search(r"[.!?:\n]\s*$", before))


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _by_choice_text(text: str, choices: Sequence[str], valid: str) -> str | None:
    """The letter whose choice text the answer holds: all of it, or the only choice (of those not part
    of another found) found as whole words."""
    said = _norm(text)
    if not said:
        return None
    texts = [_norm(str(c)) for c in choices]
    for letter, choice in zip(valid, texts, strict=False):
        if choice and said == choice:
            return letter
    found = [(letter, choice) for letter, choice in zip(valid, texts, strict=False)
             if choice and re.search(rf"(?<!\w){re.escape(choice)}(?!\w)", said)]
    # "Paris, Texas" holds "Paris": a choice inside another found one is not an answer of its own
    found = [(ltr, c) for ltr, c in found if not any(c != other and c in other for _, other in found)]
    return found[0][0] if len(found) == 1 else None


def extract_letter(text: str | None, choices: Sequence[str] | int = 4) -> str | None:
    """The choice (``A``, ``B``, ...) a model's answer picks, or None when it picks none or several.

    ``choices``: the choices' texts (their number gives the valid letters, and an answer that repeats
    one choice's text picks it) or only their number. Tried in order, the first that finds a valid
    letter wins: an answer phrase ("the answer is (B)", the last one), "option B is correct", the whole
    answer being a letter, a label opening it ("B. Paris", "(c) ...", "B Paris"), the only label in it
    ("... (B) ..."), the text of exactly one choice, the only capital letter standing alone.
    """
    if not text or not text.strip():
        return None
    texts = list(choices) if not isinstance(choices, int) else []
    valid = letters_for(choices if isinstance(choices, int) else len(texts))
    text = text.strip()

    def ok(letter: str | None) -> str | None:
        return letter.upper() if letter and letter.upper() in valid else None

    phrases = []
    for m in _ANSWER_PHRASE.finditer(text):
        letter = m.group("letter")
        # a lowercase letter is a label only when marked as one ("(b)", "b)", "b." at the end), never the
        # article in "the answer is a planet"
        after = text[m.end():m.end() + 1]
        marked = m.group("open") or m.group("close") or after in ("", ".", ",", ";", ":", ")", "\n")
        if letter.islower() and not marked:
            continue
        if ok(letter):
            phrases.append(ok(letter))
    if phrases:
        return phrases[-1]
    m = _OPTION_CORRECT.search(text)
    if m and ok(m.group("letter")) and (m.group("letter").isupper() or "(" in m.group(0) or "ption" in m.group(0)
                                        or "hoice" in m.group(0)):
        return ok(m.group("letter"))
    m = _ONLY_LETTER.match(text)
    if m:
        return ok(m.group("letter"))
    m = _LABEL_FIRST.match(text)
    if m:
        letter = ok(m.group("l1") or m.group("l2") or m.group("l3"))
        if letter:
            return letter
    m = _LETTER_FIRST.match(text)
    if m and ok(m.group("letter")):
        letter, rest = m.group("letter"), m.group("rest")
        choice = _norm(str(texts[valid.index(letter)])) if texts else ""
        repeats_choice = bool(choice) and _norm(rest).startswith(choice)
        others = {ok(o.group("letter")) for o in _LONE_CAPITAL.finditer(rest) if not _is_word(rest, o)} - {None}
        if (letter not in ("A", "I") or repeats_choice) and not others - {letter}:  # not "B and C ..."
            return letter
    labels = {ok(m.group("l1") or m.group("l2")) for m in _BRACKETED.finditer(text)} - {None}
    if len(labels) == 1:
        return labels.pop()
    if texts:
        letter = _by_choice_text(text, texts, valid)
        if letter:
            return letter
    lone = {ok(m.group("letter")) for m in _LONE_CAPITAL.finditer(text) if not _is_word(text, m)} - {None}
    return lone.pop() if len(lone) == 1 else None


# --- numbers ------------------------------------------------------------------------------------------

# a number as people write it: a sign (ASCII or the Unicode minus), a currency sign, thousands
# separators in groups of three, decimals; "5-3" is 5 and 3, not 5 and -3
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+−]?)(?:[$€£]\s?)?"
    r"(?P<digits>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)(?!\.\d)")
_HASHES = re.compile(r"####\s*")
_BOXED = re.compile(r"\\boxed\s*\{([^{}]*)\}")
_FINAL_PHRASE = re.compile(
    r"(?i:\banswer\s*(?:is|would\s+be|will\s+be|should\s+be|=|:|equals)\s*[:=]?\s*(?:\*\*)?\s*"
    r"(?:approximately\s+|about\s+)?)")
# what follows a number that is a step of a calculation, not its result: "5 + 3 = 8"
_OPERATOR_NEXT = re.compile(r"\s*[-+*/×÷=x]\s*[\d$(]")


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUMBER.finditer(text):
        value = float(m.group("digits").replace(",", ""))
        out.append(-value if m.group("sign") in ("-", "−") else value)
    return out


def _first_number(text: str) -> float | None:
    found = _numbers(text)
    return found[0] if found else None


def extract_number(text: str | None) -> float | None:
    """The final numeric answer of a model's worked answer, or None.

    In order: the number after the last ``####`` (GSM8K's own marker), inside the last ``\\boxed{}``,
    after the last "answer is" / "answer:" phrase (unless a calculation goes on from it), else the last
    number in the text.
    Thousands separators (``1,234``), signs (``-5``, ``−5``), currency (``$18``) and decimals (``3.50``)
    are read; a sentence's full stop is not a decimal point.
    """
    if not text or not text.strip():
        return None
    parts = _HASHES.split(text)
    if len(parts) > 1:
        value = _first_number(parts[-1])
        if value is not None:
            return value
    boxed = _BOXED.findall(text)
    if boxed:
        value = _first_number(boxed[-1])
        if value is not None:
            return value
    phrases = list(_FINAL_PHRASE.finditer(text))
    for m in reversed(phrases):
        found = _NUMBER.match(text, m.end())
        if found and not _OPERATOR_NEXT.match(text, found.end()):
            return _first_number(found.group(0))
    found = _numbers(text)
    return found[-1] if found else None


def reference_number(value: object) -> float | None:
    """The answer of a math reference: a number, text that is one ("1,234"), or a worked solution
    ending in ``#### N`` (GSM8K's layout). None when there is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str) or not value.strip():
        return None
    parts = _HASHES.split(value)
    if len(parts) > 1:
        return _first_number(parts[-1])
    whole = _NUMBER.fullmatch(value.strip().rstrip("."))
    return _first_number(whole.group(0)) if whole else None


def same_number(answer: float | None, reference: float | None) -> bool:
    """Whether two numbers are the same answer (``18.00`` is ``18``; floating-point noise aside)."""
    if answer is None or reference is None:
        return False
    return math.isclose(answer, reference, rel_tol=1e-9, abs_tol=1e-9)


def format_number(value: float | None) -> str | None:
    """A number as an answer is written: ``72``, ``-3.5``, ``1234567`` (no exponent, no trailing zeros)."""
    if value is None:
        return None
    if float(value).is_integer():
        return str(int(value))
    from decimal import Decimal

    return format(Decimal(repr(float(value))), "f")  # every digit the float holds, never an exponent
