"""Metric modules of our own for Hugging Face `evaluate`, used offline instead of the Hub's scripts.

`evaluate.load("rouge")` fetches a metric script from the Hub; offline it falls back to its module cache.
`lib.engine.fmeval_offline.prepare` copies these files there, so fmeval's own code computes ROUGE with
Google's `rouge_score` and WER with `jiwer` (the libraries the Hub's scripts use), and finds a BERTScore
module that says it cannot run. They are copied, never imported from here.
"""

# file name -> the metric name `evaluate.load` asks for
MODULES = {"rouge.py": "rouge", "wer.py": "wer", "bertscore.py": "bertscore"}
