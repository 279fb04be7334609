"""Benchmark suites: a `dataset.benchmark` entry expands into the dataset (the user's files, read by
`data.py`), the prompt format and the scorer of its suite (`suites.py`: MMLU-style lettered multiple
choice, GSM8K-style final number; answers read by `extract.py`). `config.py` normalises the entry; the
scorer is `lib.scorers.benchmark`."""
