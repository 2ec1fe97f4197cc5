"""``export_run``: a trained run's model and tokenizer as a folder others load without the workbench.

Two forms, chosen by what the architecture is:

- **transformers** (``workbench.interop.to_hf`` expresses it as LLaMA or GPT-2; a μP / CompleteP model with its
  multipliers folded into its weights, ``workbench.interop.fold``): ``save_pretrained`` of the model, its
  generation config and a fast tokenizer (``tokenizer.json``) rebuilt from the run's sentencepiece model, so
  ``AutoModelForCausalLM.from_pretrained(DIR)``, ``AutoTokenizer.from_pretrained(DIR)`` and
  ``pipeline("text-generation", model=DIR)`` work with no extra arguments. Every special token is one of
  the sentencepiece model's own pieces (``<unk>``, ``</s>``; the workbench trains no ``<s>``), so no id
  falls outside the model's vocabulary; ``</s>`` is ``eos_token_id`` in the model's config and
  generation config, and the tokenizer's pad token (``tokenizer(texts, padding=True)``), padding on the
  left as batched generation with a causal LM needs. Before anything is written, the transformers model's
  logits are checked against the workbench model's (the μP one, multipliers and all): an architecture
  ``to_hf`` converts but transformers computes differently is exported in the plain form, not silently changed.
- **plain** (every other architecture, and a μP / CompleteP model whose multipliers do not fold exactly, its
  config keeping them): ``model.safetensors``, ``config.json`` (``TransformerConfig.to_dict()``)
  and the run's tokenizer file (``tokenizer.model`` for sentencepiece, ``tokenizer.json`` for a ``tokenizers``
  one, none for a run trained on token ids), loaded by ``components`` in three lines plus the tokenizer's
  (PLAIN_LOAD, PLAIN_TOKENIZERS), then generating with it (PLAIN_GENERATE); all in the folder's README.md.

Either folder gets the umask's permissions (0755 / 0644 under umask 022), not a temporary folder's 0700 / 0600.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

from components import TransformerLM

from .data.tokenizer import Tokenizer
from .distribution import COMPONENTS_DISTRIBUTION
from .fileio import STORAGE_ERRORS, normal_permissions, remove_stale_temps, staging_folder
from .load import load_run
from .results import RunFolderError
from .sample import first_completed_seed

PLAIN_LOAD = """\
import json, safetensors.torch, components  # plus the experiment's plugin modules, if it used any
model = components.TransformerLM(components.TransformerConfig.from_dict(json.load(open("{dir}/config.json"))))
safetensors.torch.load_model(model, "{dir}/model.safetensors"); model.eval()"""
# The tokenizer of a plain folder, by the run's tokenizer kind: (file name, the line that loads it).
PLAIN_TOKENIZERS = {
    "sentencepiece": ("tokenizer.model",
                      'import sentencepiece; tokenizer = sentencepiece.SentencePieceProcessor(model_file="{dir}/tokenizer.model")'),
    "huggingface": ("tokenizer.json", 'import tokenizers; tokenizer = tokenizers.Tokenizer.from_file("{dir}/tokenizer.json")'),
}
NO_TOKENIZER = "# no tokenizer: the run was trained on token ids (data.source 'bin')"
# Generating with that model and tokenizer, by kind ({eos}: the run's end-of-document id). Each library spells
# encode and the end id its own way: sentencepiece's eos_id() is a method, tokenizers' encode returns an Encoding.
PLAIN_GENERATE = {
    "sentencepiece": 'import torch; ids = model.generate(torch.tensor([tokenizer.encode("{prompt}")]), max_new_tokens=50, temperature=0.8, seed=0, eos_id=tokenizer.eos_id())',
    "huggingface": 'import torch; ids = model.generate(torch.tensor([tokenizer.encode("{prompt}", add_special_tokens=False).ids]), max_new_tokens=50, temperature=0.8, seed=0, eos_id={eos})',
}
PLAIN_DECODE = "print(tokenizer.decode(ids[0].tolist()))"
PLAIN_PROMPT = "def main():"
# What loading a plain folder needs installed, by tokenizer kind (the workbench itself is not needed).
PLAIN_REQUIREMENTS = {"sentencepiece": " sentencepiece", "huggingface": " tokenizers", "none": ""}
LOGIT_TOLERANCE = 1e-4  # fp32: the two implementations differ by rounding only


class ExportError(RunFolderError):
    """The export cannot be written (the --out folder exists and is not empty, or a file stands where a
    folder of its path must be); one line."""


@dataclass(frozen=True)
class Exported:
    """What ``export_run`` wrote: ``form`` "transformers" or "plain"; ``reason`` why not transformers."""

    out: Path
    form: str
    variant: str
    seed: int
    reason: str | None = None


def export_run(run_dir: str | Path, variant: str, out: str | Path, seed: int | None = None) -> Exported:
    """Export ``variant``'s trained model (``seed`` None: its first completed seed) to the new folder ``out``.

    Raises LoadError (as ``load_run``) for a run that cannot be loaded and ExportError for an ``out``
    that exists and is not empty or cannot be created. The folder appears whole or not at all (written in
    a staging folder beside it, then renamed; the staging folder is removed on any error, Ctrl-C or
    SIGTERM, and one a killed export left is removed by the next), with the umask's permissions.
    """
    out = Path(out)
    _check_out(out)
    model, tokenizer = load_run(run_dir, variant, seed)
    seed = first_completed_seed(run_dir, variant) if seed is None else seed
    if tokenizer.kind == "sentencepiece":
        hf_model, reason = _transformers_model(model, tokenizer)
    else:  # the transformers tokenizer is rebuilt from a sentencepiece model (hf_tokenizer)
        hf_model, reason = None, f"the run's tokenizer is of kind '{tokenizer.kind}', not a sentencepiece model"
    _make_parent(out)
    remove_stale_temps(out.parent, recursive=False)  # staging folders of killed exports
    with staging_folder(out.parent, out.name) as staging:
        if hf_model is not None:
            hf_model.save_pretrained(staging)
            hf_tokenizer(tokenizer).save_pretrained(staging)
            _portable_tokenizer_class(staging / "tokenizer_config.json")
        else:
            _write_plain(staging, model, tokenizer, reason)
        normal_permissions(staging)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    return Exported(out, "transformers" if hf_model is not None else "plain", variant, seed, reason)


def _check_out(out: Path) -> None:
    """ExportError unless ``out`` is missing or an empty folder, and the nearest existing folder on its
    path is a folder (``--out FILE/sub`` cannot be created)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: already exists and is not an empty folder; choose another --out or remove it")
    existing = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        raise ExportError(f"{out}: cannot create the export folder there ({existing} is a file, not a folder); "
                          f"choose another --out")


def _make_parent(out: Path) -> None:
    """Create ``out``'s parent folders; ExportError (one line) where that fails for a reason other than
    the disk (STORAGE_ERRORS, which the command line reports as such)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in STORAGE_ERRORS:
            raise
        problem = "a file stands on its path" if exc.errno in (errno.EEXIST, errno.ENOTDIR) else exc.strerror
        raise ExportError(f"{out}: cannot create the export folder there ({problem}); choose another --out") from None


def _transformers_model(model: TransformerLM, tokenizer: Tokenizer):
    """(transformers model, None) when transformers computes the same logits; else (None, why not)."""
    from .interop import to_hf

    try:
        hf_model = to_hf(model, eos_token_id=tokenizer.eos_id, bos_token_id=None, pad_token_id=None)
    except ValueError as exc:
        return None, str(exc)
    except ImportError:
        return None, "transformers is not installed (pip install transformers)"
    hf_model.eval()
    hf_model.generation_config.eos_token_id = tokenizer.eos_id
    hf_model.generation_config.pad_token_id = tokenizer.eos_id  # batched generate pads finished rows with eos
    hf_model.generation_config.bos_token_id = None
    probe = torch.arange(min(model.config.max_seq_len, 64)).remainder(model.config.vocab_size)[None]
    try:
        with torch.no_grad():
            ours, theirs = model(probe), hf_model(probe).logits
    except RuntimeError as exc:  # e.g. Mixtral's grouped_mm experts need widths that are multiples of 16 bytes
        return None, f"transformers' {type(hf_model).__name__} cannot run this model: {str(exc).splitlines()[0]}"
    diff = (ours - theirs).abs().max().item()
    if not diff <= LOGIT_TOLERANCE:
        return None, (f"transformers' {type(hf_model).__name__} computes different logits for this architecture "
                      f"(max difference {diff:.2g}; window={model.config.window}, qk_norm={model.config.qk_norm!r})")
    return hf_model, None


def _spm_merges(sp, vocab: dict[str, int], special: set[str]) -> list[tuple[str, str]]:
    """BPE merges reproducing sentencepiece's BPE encoding: every split (left, right) of a piece into two
    pieces, ordered by the piece's score (sentencepiece merges the highest-scoring pair first)."""
    merges = []
    for piece, index in vocab.items():
        if piece in special:
            continue
        splits = [(piece[:i], piece[i:]) for i in range(1, len(piece))]
        splits = [s for s in splits if s[0] in vocab and s[1] in vocab and not special & set(s)]
        merges += [(left, right, sp.get_score(index)) for left, right in sorted(splits, key=lambda s: (vocab[s[0]], vocab[s[1]]))]
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(left, right) for left, right, _ in merges]


def hf_tokenizer(tokenizer: Tokenizer):
    """The run's sentencepiece BPE model as a transformers fast tokenizer with the same ids for any text, and a
    pad token (eos where the model has no pad piece; the model config's pad_token_id stays None, so eos's
    embedding still learns when fine-tuned).

    The workbench's tokenizer has identity normalisation, no dummy prefix and byte fallback, so the
    pipeline is: spaces -> '▁', BPE with sentencepiece's merge order and byte fallback, no
    pre-tokenizer, no BOS/EOS added; decoding reverses it. Special tokens are sentencepiece's own
    control/unknown pieces (ids inside the vocabulary).
    """
    import sentencepiece as spm
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_proto=tokenizer.serialized())  # the bytes loaded, not the file again
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    special = {sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)}
    unk = sp.id_to_piece(sp.unk_id())
    backend = HFTokenizer(models.BPE(vocab=vocab, merges=_spm_merges(sp, vocab, special), unk_token=unk, fuse_unk=True,
                                     byte_fallback=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    ids = {"unk_token": sp.unk_id(), "eos_token": sp.eos_id(), "bos_token": sp.bos_id(), "pad_token": sp.pad_id()}
    if ids["pad_token"] < 0:  # the workbench trains no pad piece: pad with eos, as transformers does for causal LMs
        ids["pad_token"] = ids["eos_token"]
    tokens = {name: sp.id_to_piece(i) for name, i in ids.items() if i >= 0}
    # Left padding: a batch's last positions are then every row's next-token logits (generate warns on right).
    return PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False, padding_side="left",
                                   **tokens)


def _portable_tokenizer_class(path: Path) -> None:
    """Name the tokenizer class by the name every transformers version resolves (5.x writes
    "TokenizersBackend", which 4.x lacks; both load "PreTrainedTokenizerFast" from tokenizer.json)."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _write_plain(folder: Path, model: TransformerLM, tokenizer: Tokenizer, reason: str) -> None:
    safetensors.torch.save_model(model, str(folder / "model.safetensors"))  # ties (embed / lm_head) kept once
    (folder / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2) + "\n", encoding="utf-8")
    lines = [PLAIN_LOAD]
    if tokenizer.kind in PLAIN_TOKENIZERS:
        name, line = PLAIN_TOKENIZERS[tokenizer.kind]
        tokenizer.save(folder / name)
        lines += [line, PLAIN_GENERATE[tokenizer.kind], PLAIN_DECODE]
    else:
        lines.append(NO_TOKENIZER)
    code = "\n".join(lines).format(dir="DIR", prompt=PLAIN_PROMPT, eos=tokenizer.eos_id)
    requirements = f"{COMPONENTS_DISTRIBUTION} safetensors{PLAIN_REQUIREMENTS[tokenizer.kind]}"
    (folder / "README.md").write_text(
        "# A workbench model (components.TransformerLM)\n\n"
        f"Not a transformers folder: {reason}\n\n"
        f"Load it and generate (DIR: this folder) after `pip install {requirements}` (the workbench itself is not "
        f"needed):\n\n```python\n{code}\n```\n",
        encoding="utf-8")
