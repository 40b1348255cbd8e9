"""Where the real test and benchmark data lives: $WIRESTREAM_DATA, else ../shared/data
beside the repository (Reuters-21578, IPTC specimens, language and date test sets)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("WIRESTREAM_DATA", REPO.parent / "shared" / "data"))
