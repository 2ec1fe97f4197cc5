"""Data layer: corpus (stdlib or files) -> split -> sentencepiece tokenizer -> cached token arrays -> batches.

    data = prepare(DataSettings(vocab_size=2048))
    x, y = train_batch(data.train, step, seed=0, batch_size=16, seq_len=128)
"""

from .batches import batch_fingerprint, batch_offsets, step_seed, train_batch, val_batches, val_offsets, windows
from .corpus import Document, load_corpus, split_documents, stdlib_files, stdlib_root
from .errors import DataError
from .pipeline import TokenData, check_sizes, fingerprint, prepare, token_dtype, unigram_loss
from .settings import DataSettings
from .tokenizer import Tokenizer, train_tokenizer

__all__ = [
    "DataError", "DataSettings", "Document", "TokenData", "Tokenizer", "batch_fingerprint", "batch_offsets",
    "check_sizes", "fingerprint", "load_corpus", "prepare", "split_documents", "stdlib_files", "stdlib_root",
    "step_seed", "token_dtype", "train_batch", "train_tokenizer", "unigram_loss", "val_batches", "val_offsets",
    "windows",
]
