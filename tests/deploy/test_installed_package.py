"""The wheel installed into a fresh virtual environment beside other distributions'
``schemas`` and ``transforms`` packages: the demo still runs, with the same output."""

import json
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.deploy.images import REPO

SUMMARY = re.compile(r"^read=(\d+) unique=(\d+) duplicates=(\d+) dead_letters=(\d+) errors=(\d+)$", re.M)
DEMO = ["run", "--source", str(REPO / "samples" / "archive")]  # what `make demo` runs
FOREIGN = {"schemas": "an unrelated schemas distribution", "transforms": "an unrelated transforms distribution"}

pytestmark = pytest.mark.integration


def site_packages(environment: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(environment),
                                                     "platbase": str(environment)}))


@pytest.fixture(scope="module")
def fresh_environment(project_wheel, tmp_path_factory) -> Path:
    environment = tmp_path_factory.mktemp("venv")
    venv.create(environment, with_pip=True)
    packages = site_packages(environment)
    for name, what in FOREIGN.items():  # top-level packages that own the generic names
        (packages / name).mkdir()
        (packages / name / "__init__.py").write_text(f"WHAT = {what!r}\n")
    # The dependencies come from this environment's site-packages (no network here): a
    # plain path entry, so its .pth files (the editable install of this checkout) stay unread.
    (packages / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run([environment / "bin" / "python", "-m", "pip", "install", "--no-deps", "-q",
                              str(project_wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return environment


def demo_output(command: list, out: Path, cwd: Path) -> tuple[str, list[str]]:
    proc = subprocess.run([*command, *DEMO, "--sink", f"jsonl:{out}"], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (summary,) = SUMMARY.findall(proc.stderr)
    records = sorted(line for f in sorted(out.rglob("*.jsonl")) for line in f.read_text().splitlines())
    ids = sorted(json.loads(r).get("event_id") or json.loads(r)["dead_letter_id"] for r in records)
    return summary, ids


def test_the_installed_package_imports_only_under_its_own_name(fresh_environment, tmp_path):
    probe = ("import schemas, transforms, wirestream.schemas, wirestream.transforms.tag.gazetteer as g\n"
             "from importlib import resources\n"
             "print(schemas.WHAT); print(transforms.WHAT); print(wirestream.schemas.__file__)\n"
             "g.load_gazetteer()\n"
             "print(len(list((resources.files('wirestream.transforms') / 'data').iterdir())))")
    proc = subprocess.run([fresh_environment / "bin" / "python", "-c", probe], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    schemas_what, transforms_what, ours, data_files = proc.stdout.splitlines()
    assert (schemas_what, transforms_what) == (FOREIGN["schemas"], FOREIGN["transforms"])
    assert Path(ours).is_relative_to(site_packages(fresh_environment))  # not this checkout
    # the gazetteers and rules were installed with the code
    assert int(data_files) == len(list((REPO / "transforms" / "data").iterdir())) > 0


def test_the_demo_runs_from_the_fresh_environment_as_from_the_checkout(fresh_environment, tmp_path):
    installed = demo_output([fresh_environment / "bin" / "wirestream"], tmp_path / "installed", tmp_path)
    checkout = demo_output([sys.executable, "-m", "wirestream.pipelines.cli"], tmp_path / "checkout", REPO)
    read, unique, duplicates, dead, errors = map(int, installed[0])
    assert read == unique + duplicates + dead > 0 and errors == 0
    assert installed == checkout  # same counts, same event and dead-letter ids
