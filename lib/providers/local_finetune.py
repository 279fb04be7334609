"""Fine-tune a local model on question/answer pairs (LoRA by default), on the CPU, for a bounded
number of steps. The loss covers the answer tokens only, so the model learns what to answer and how
briefly, not to repeat questions."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULTS = {"method": "lora", "max_steps": 60, "batch_size": 8, "learning_rate": 3e-4,
            "max_input_length": 64, "seed": 7, "max_train_records": None}


def chat_examples(tokenizer: Any, pairs: list[tuple[str, str]], max_len: int,
                  system_prompt: str | None = None) -> list[dict[str, list[int]]]:
    """Token ids and labels (-100 on the prompt) for each (question, answer) pair, each prompt the
    text the model is served (`local_model.chat_messages`): train as served."""
    from lib.providers.local_model import chat_messages

    examples = []
    for question, answer in pairs:
        prompt = tokenizer.apply_chat_template(chat_messages(question, system_prompt), tokenize=False,
                                               add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = (p_ids + a_ids)[-max_len:]
        n_answer = min(len(a_ids), len(ids))
        labels = [-100] * (len(ids) - n_answer) + ids[-n_answer:]
        examples.append({"input_ids": ids, "labels": labels})
    return examples


def _batch(examples: list[dict], pad_id: int):
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids, labels, mask = [], [], []
    for e in examples:
        pad = width - len(e["input_ids"])
        ids.append([pad_id] * pad + e["input_ids"])
        labels.append([-100] * pad + e["labels"])
        mask.append([0] * pad + [1] * len(e["input_ids"]))
    return torch.tensor(ids), torch.tensor(labels), torch.tensor(mask)


def train(base_path: str | Path, pairs: list[tuple[str, str]], out_dir: str | Path, params: dict[str, Any],
          progress: Callable[[str], None] = print, system_prompt: str | None = None) -> dict[str, Any]:
    """Train and save into ``out_dir`` (a LoRA adapter, or a whole model with method: full), on the
    prompts as the model is served with ``system_prompt``."""
    import torch

    from lib.providers.local_model import building, cores_shared, pretrained

    p = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
    torch.manual_seed(p["seed"])
    tokenizer, model = pretrained(base_path)
    if p["method"] == "lora":
        with building():  # its new layers too would land on "meta" beside another thread's load
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(
                r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.train()
    examples = chat_examples(tokenizer, pairs, p["max_input_length"], system_prompt)
    optimizer = torch.optim.AdamW([w for w in model.parameters() if w.requires_grad], lr=p["learning_rate"])
    rng = random.Random(p["seed"])
    order: list[int] = []
    losses = []
    started = time.time()
    for step in range(1, p["max_steps"] + 1):
        if len(order) < p["batch_size"]:
            order += rng.sample(range(len(examples)), len(examples))
        batch = [examples[order.pop()] for _ in range(p["batch_size"])]
        ids, labels, mask = _batch(batch, tokenizer.pad_token_id)
        with cores_shared():
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        losses.append(loss.item())
        if hasattr(progress, "track"):
            progress.track(train_step=step, train_total=p["max_steps"], loss=losses[-1])
        if step == 1 or step % 5 == 0 or step == p["max_steps"]:
            progress(f"step {step}/{p['max_steps']} loss {losses[-1]:.3f} ({time.time() - started:.0f}s)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if p["method"] == "full":
        tokenizer.save_pretrained(out)
    return {"method": p["method"], "steps": p["max_steps"], "first_loss": losses[0], "final_loss": losses[-1],
            "train_seconds": round(time.time() - started, 1), "examples": len(examples),
            "mean_tokens": round(sum(len(e["input_ids"]) for e in examples) / len(examples), 1)}
