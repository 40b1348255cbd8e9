"""The deploy images' Dockerfiles, read as instructions, and the wheel their build installs."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATAFLOW_DOCKERFILE = REPO / "deploy" / "dataflow" / "Dockerfile"
FLOORS = ("pipelines", "transforms", "schemas")  # folders installed as wirestream.<floor>

DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword, arguments.strip()))
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    return instructions


def copies(instructions) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY/ADD from the build context (not --from=)."""
    result = []
    for keyword, arguments in instructions:
        if keyword in ("COPY", "ADD"):
            words = arguments.split()
            if any(w.startswith("--from=") for w in words):
                continue
            paths = [w for w in words if not w.startswith("--")]
            result.append((paths[:-1], paths[-1]))
    return result



def build_wheel_of_the_image_context(tmp: Path) -> Path:
    """The wheel of exactly what the images copy before their ``pip install .``."""
    context = tmp / "context"
    for sources, _ in copies(dockerfile_instructions(DATAFLOW_DOCKERFILE)):
        for source in sources:
            if source.startswith("deploy/"):
                continue
            src = REPO / source
            if src.is_dir():
                shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (context / source).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, context / source)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(context), "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp / "dist")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp / "dist").glob("wirestream-*.whl")
    return wheel
