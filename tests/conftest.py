import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The real test data (Reuters-21578, IPTC specimens, ...): WIRESTREAM_DATA, else ../shared/data."""
    return Path(os.environ.get("WIRESTREAM_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = data_dir()
    if not d.is_dir():
        message = f"real data not found at {d} (set WIRESTREAM_DATA)"
        if os.environ.get("CI"):  # CI always has the data: its absence is a failure there
            pytest.fail(message)
        pytest.skip(message)
    return d
