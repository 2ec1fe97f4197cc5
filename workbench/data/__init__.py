"""Data layer: corpus (stdlib or files) -> split -> tokenizer -> cached token arrays -> batches.

    data = prepare(DataSettings(vocab_size=2048))
    x, y = train_batch(data.train, step, seed=0, batch_size=16, seq_len=128)

The batch functions (torch) are imported on first use, so encoding worker processes stay light.
"""

from .corpus import Document, LongDocument, iter_documents, load_corpus, stdlib_files, stdlib_root
from .errors import DataError
from .pipeline import TokenData, check_sizes, fingerprint_head, prepare, token_dtype, unigram_loss, vocab_size_of
from .settings import DataSettings
from .stream import split_documents
from .tokenizer import Tokenizer, train_tokenizer

_BATCHES = ("batch_fingerprint", "batch_offsets", "step_seed", "train_batch", "val_batches", "val_offsets", "windows")

__all__ = [
    "DataError", "DataSettings", "Document", "LongDocument", "TokenData", "Tokenizer", "check_sizes",
    "fingerprint_head", "iter_documents", "load_corpus", "prepare", "split_documents", "stdlib_files", "stdlib_root",
    "token_dtype", "train_tokenizer", "unigram_loss", "vocab_size_of", *_BATCHES,
]


def __getattr__(name: str):
    if name in _BATCHES:
        from . import batches

        return getattr(batches, name)
    raise AttributeError(f"module 'workbench.data' has no attribute '{name}'")
