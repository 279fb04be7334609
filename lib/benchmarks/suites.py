"""The two kinds of benchmark suite: what a record of each holds, how its question is asked, and how an
answer is read and judged.

- ``mmlu``: multiple choice with lettered choices (MMLU, ARC, MMLU-Pro, your own): a question, 2-26
  choices, the right one as a letter or a 0-based index, optionally a subtask (MMLU's subject).
- ``gsm8k``: a math word problem whose answer is a number (GSM8K, your own): a question and a reference
  that is a number or a worked solution ending in ``#### N``.

A suite turns a data row (after the column mapping) into an item, the plain data preprocess stores
beside each record; the scorer judges an answer against that item alone.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from lib.benchmarks.extract import (
    extract_letter,
    extract_number,
    format_number,
    letters_for,
    reference_number,
    same_number,
)


class RowError(ValueError):
    """A data row cannot be an item of the suite; the message says why (the reader adds file and line)."""


def subtask_name(value: Any) -> str | None:
    """A subtask as scores are named: lowercase letters, digits and underscores (``High School
    Physics`` -> ``high_school_physics``); None when nothing is left."""
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    name = re.sub(r"[^a-z0-9]+", "_", str(value).strip().lower()).strip("_")
    return name[:64] or None


def _text(row: dict[str, Any], column: str, role: str) -> str:
    if column not in row:
        keys = ", ".join(list(row)[:12]) or "none"
        raise RowError(f"has no column '{column}' ({role}); it has: {keys}")
    value = row[column]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else repr(value)
        raise RowError(f"'{column}' ({role}) is {kind}, not text")
    text = str(value)
    if not text.strip():
        raise RowError(f"'{column}' ({role}) is empty")
    return text


class Suite:
    """What every suite offers: its column defaults, the item of a row, the prompt, the judged answer."""

    name: ClassVar[str]
    title: ClassVar[str]
    column_keys: ClassVar[tuple[str, ...]]
    default_columns: ClassVar[dict[str, Any]]
    answer_kind: ClassVar[str]  # what the scorer reads from an answer, for its notes

    def item(self, row: dict[str, Any], columns: dict[str, Any], subtask: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def positional(self, width: int, columns: dict[str, Any]) -> list[str] | None:
        """Column names for a CSV without a header row of ``width`` columns, or None when none fit."""
        raise NotImplementedError

    def prompt(self, item: dict[str, Any]) -> str:
        raise NotImplementedError

    def extract(self, output: str, item: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def correct(self, answer: str | None, item: dict[str, Any]) -> bool:
        return answer is not None and answer == item["answer"]


def _row_subtask(row: dict[str, Any], columns: dict[str, Any], fallback: str | None) -> str | None:
    column = columns.get("subtask")
    if column and row.get(column) not in (None, ""):
        return subtask_name(row[column])
    return fallback


class MultipleChoice(Suite):
    name = "mmlu"
    title = "MMLU"
    column_keys = ("question", "choices", "answer", "subtask")
    # choices: a column holding a list, or a list of columns (None: `choices` if the row has it, else the
    # letter columns A, B, C, ... it has)
    default_columns: ClassVar[dict[str, Any]] = {"question": "question", "choices": None, "answer": "answer",
                                                 "subtask": "subject"}
    answer_kind = "letter"

    def _choices(self, row: dict[str, Any], columns: dict[str, Any]) -> list[str]:
        spec = columns.get("choices")
        if spec is None:
            if "choices" in row:
                spec = "choices"
            else:
                spec = []
                for letter in letters_for(26):
                    if letter not in row:
                        break
                    spec.append(letter)
                if len(spec) < 2:
                    raise RowError("has neither a 'choices' column (a list) nor choice columns A, B, C, ...; "
                                   "name them with benchmark.columns.choices")
        if isinstance(spec, str):
            if spec not in row:
                raise RowError(f"has no column '{spec}' (the choices); it has: {', '.join(list(row)[:12])}")
            values = row[spec]
            if not isinstance(values, list):
                raise RowError(f"'{spec}' (the choices) is not a list; in a CSV give one column per choice "
                               "(benchmark.columns.choices: [A, B, C, D])")
        else:
            values = [_text(row, c, "a choice") for c in spec]
        choices = []
        for i, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
                raise RowError(f"choice {letters_for(26)[i] if i < 26 else i + 1} is {value!r}, not text")
            choices.append(str(value).strip())
        if not 2 <= len(choices) <= 26:
            raise RowError(f"has {len(choices)} choices; a lettered question has 2 to 26")
        return choices

    def _answer(self, value: Any, choices: list[str]) -> str:
        letters = letters_for(len(choices))
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(choices):
                return letters[value]
            raise RowError(f"the answer {value} is not the index of one of its {len(choices)} choices (0-based)")
        text = str(value).strip() if isinstance(value, (str, float)) and not isinstance(value, bool) else ""
        label = re.fullmatch(r"[\(\[]?\s*([A-Za-z])\s*[\)\]\.]?", text)
        if label and label.group(1).upper() in letters:
            return label.group(1).upper()
        if text.isdigit() and int(text) < len(choices):
            return letters[int(text)]  # a 0-based index written as text (a CSV export of HF's cais/mmlu)
        same = [letters[i] for i, c in enumerate(choices) if c.strip().lower() == text.lower()]
        if text and len(same) == 1:
            return same[0]
        raise RowError(f"the answer {value!r} is neither a letter of its choices ({', '.join(letters)}), a 0-based "
                       "index, nor the text of one choice")

    def item(self, row: dict[str, Any], columns: dict[str, Any], subtask: str | None) -> dict[str, Any]:
        question = _text(row, columns["question"], "the question")
        choices = self._choices(row, columns)
        if columns["answer"] not in row:
            raise RowError(f"has no column '{columns['answer']}' (the answer); it has: {', '.join(list(row)[:12])}")
        answer = self._answer(row[columns["answer"]], choices)
        return {"question": question.strip(), "choices": choices, "answer": answer,
                "subtask": _row_subtask(row, columns, subtask)}

    def positional(self, width: int, columns: dict[str, Any]) -> list[str] | None:
        # MMLU's own CSVs: question, one column per choice, the answer letter
        if width < 4:
            return None
        choices = columns.get("choices")
        names = choices if isinstance(choices, list) and len(choices) == width - 2 else list(letters_for(width - 2))
        return [columns["question"], *names, columns["answer"]]

    def prompt(self, item: dict[str, Any]) -> str:
        letters = letters_for(len(item["choices"]))
        about = f" about {item['subtask'].replace('_', ' ')}" if item.get("subtask") else ""
        listed = ", ".join(letters[:-1]) + f" or {letters[-1]}"
        lines = [f"The following is a multiple choice question{about}. Answer with the letter of the correct "
                 f"choice ({listed}).", "", item["question"]]
        lines += [f"{letter}. {choice}" for letter, choice in zip(letters, item["choices"], strict=True)]
        lines.append("Answer:")
        return "\n".join(lines)

    def extract(self, output: str, item: dict[str, Any]) -> str | None:
        return extract_letter(output, item.get("choices") or 4)


class Math(Suite):
    name = "gsm8k"
    title = "GSM8K"
    column_keys = ("question", "answer", "subtask")
    default_columns: ClassVar[dict[str, Any]] = {"question": "question", "answer": "answer", "subtask": None}
    answer_kind = "number"

    def item(self, row: dict[str, Any], columns: dict[str, Any], subtask: str | None) -> dict[str, Any]:
        question = _text(row, columns["question"], "the question")
        column = columns["answer"]
        if column not in row:
            raise RowError(f"has no column '{column}' (the answer); it has: {', '.join(list(row)[:12])}")
        number = reference_number(row[column])
        if number is None:
            shown = str(row[column])
            shown = shown if len(shown) <= 60 else "..." + shown[-57:]
            raise RowError(f"the answer {shown!r} is neither a number nor a solution ending in '#### <number>'")
        return {"question": question.strip(), "answer": format_number(number),
                "solution": str(row[column]), "subtask": _row_subtask(row, columns, subtask)}

    def positional(self, width: int, columns: dict[str, Any]) -> list[str] | None:
        return [columns["question"], columns["answer"]] if width == 2 else None

    def prompt(self, item: dict[str, Any]) -> str:
        return ("Solve the following math problem step by step. Write the final answer as a number after "
                f"'####'.\n\nQuestion: {item['question']}\nAnswer:")

    def extract(self, output: str, item: dict[str, Any]) -> str | None:
        return format_number(extract_number(output))

    def correct(self, answer: str | None, item: dict[str, Any]) -> bool:
        return answer is not None and same_number(float(answer), float(item["answer"]))


SUITES: dict[str, Suite] = {suite.name: suite for suite in (MultipleChoice(), Math())}
