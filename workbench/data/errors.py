"""The one error type of the data layer: a bad `data:` setting, named by its dotted config key."""

from __future__ import annotations


class DataError(ValueError):
    """A data configuration the workbench cannot use; `str(err)` is one line starting with `key`.

    `key` is the dotted config key to fix (`data.vocab_size`, `data.paths`, `train.seq_len`), so the
    CLI can print the message as is and exit with status 2.
    """

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = " ".join(str(message).split())  # one line, whatever the cause text held
        super().__init__(f"{key}: {self.message}")
