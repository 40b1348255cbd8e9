"""deploy/ for Flink and Dataflow, checked where neither can run.

The definitions must agree with the code they deploy: the entry point and the
options the CLI accepts, the Beam release the project is tested with, the files
the images copy, and each other (ports, paths, versions, parameter names).
"""

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import apache_beam
import pytest
import yaml
from apache_beam.options.pipeline_options import FlinkRunnerOptions, PortableOptions, StandardOptions

from tests.deploy.images import DOCKERFILE_INSTRUCTIONS, FLOORS, copies, dockerfile_instructions
from wirestream.pipelines.cli import parse_run_arguments
from wirestream.pipelines.options import KafkaOptions, WirestreamOptions

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
FLINK_K8S = DEPLOY / "flink" / "k8s"
DATAFLOW = DEPLOY / "dataflow"
BEAM_VERSION = apache_beam.__version__



# --- helpers --------------------------------------------------------------------------------

def cli_option_actions() -> dict[str, argparse.Action]:
    """The wirestream options of `wirestream run`, read from the CLI's own option classes."""
    parser = argparse.ArgumentParser(add_help=False)
    WirestreamOptions._add_argparse_args(parser)
    KafkaOptions._add_argparse_args(parser)
    return {action.dest: action for action in parser._actions}


def load_flex_entry():
    spec = importlib.util.spec_from_file_location("flex_template_main", DATAFLOW / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wirestream(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "wirestream.pipelines.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def flink_cluster() -> dict:
    documents = list(yaml.safe_load_all((FLINK_K8S / "flink-deployment.yaml").read_text()))
    return next(d for d in documents if d["kind"] == "FlinkDeployment")


@pytest.fixture(scope="module")
def submitter() -> dict:
    job = yaml.safe_load((FLINK_K8S / "submit-streaming-job.yaml").read_text())
    assert job["kind"] == "Job"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {"container": container, "pod": job["spec"]["template"]["spec"]}


@pytest.fixture(scope="module")
def worker_pool(flink_cluster) -> dict:
    containers = flink_cluster["spec"]["taskManager"]["podTemplate"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "beam-worker-pool")


@pytest.fixture(scope="module")
def metadata() -> dict:
    return json.loads((DATAFLOW / "metadata.json").read_text())


def flag_value(args, name):
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} given {len(values)} times in {args}"
    return values[0]


# --- the CLI's --dry-run (built by the CLI, nothing submitted) ------------------------------

def test_dry_run_resolves_flink_options_and_graph_without_submitting(tmp_path):
    # Nothing listens on this Flink address and Maven is out of reach: a submission
    # attempt would fail, so exit 0 means the options were only resolved.
    out = tmp_path / "events"
    proc = wirestream("run", "--dry-run", "--runner", "FlinkRunner",
                      "--flink_master", "localhost:8081", "--environment_type", "EXTERNAL",
                      "--environment_config", "localhost:50000",
                      "--source", "samples/archive", "--sink", f"jsonl:{out}")
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads(proc.stdout)
    assert resolved["options"]["runner"] == "FlinkRunner"
    assert resolved["options"]["flink_master"] == "localhost:8081"
    assert resolved["options"]["environment_type"] == "EXTERNAL"
    assert resolved["options"]["environment_config"] == "localhost:50000"
    for label in ("Read", "Process/PerStory", "Process/Dedup", "WriteEvents", "WriteDeadLetters"):
        assert label in resolved["graph"], label
    assert not [p for p in out.rglob("*") if p.is_file()], "a dry run wrote records"


def test_dry_run_of_a_flex_template_launch_resolves_dataflow_options(tmp_path):
    # As the Flex Template launcher starts it: main.py with --name=value parameters.
    # (A local sink: gs:// paths need Beam's gcp extra, which the image has and this venv has not.)
    proc = subprocess.run(
        [sys.executable, str(DATAFLOW / "main.py"), "--dry-run", "--runner=DataflowRunner",
         "--project=wirestream-demo", "--region=europe-west1",
         "--temp_location=gs://wirestream-demo/temp", "--source=samples/archive",
         f"--sink=jsonl:{tmp_path / 'events'}", "--drop_duplicates=true"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads(proc.stdout)
    assert resolved["options"]["runner"] == "DataflowRunner"
    assert resolved["options"]["project"] == "wirestream-demo"
    assert resolved["options"]["region"] == "europe-west1"
    assert resolved["options"]["drop_duplicates"] is True
    assert "WriteEvents" in resolved["graph"]


# --- Dataflow: metadata.json is exactly the CLI's options -----------------------------------

def test_template_parameters_are_exactly_the_cli_options(metadata):
    names = [p["name"] for p in metadata["parameters"]]
    assert len(names) == len(set(names)), "a parameter is listed twice"
    assert set(names) == set(cli_option_actions()), (
        "deploy/dataflow/metadata.json and the CLI's options differ: "
        f"missing {set(cli_option_actions()) - set(names)}, unknown {set(names) - set(cli_option_actions())}")


def test_every_template_parameter_is_described_and_typed_like_the_cli_option(metadata):
    actions = cli_option_actions()
    for parameter in metadata["parameters"]:
        action = actions[parameter["name"]]
        assert parameter["label"].strip() and len(parameter["helpText"]) > 20, parameter["name"]
        is_switch = action.nargs == 0 and action.const is True
        expected_type = ("BOOLEAN" if is_switch else
                         "NUMBER" if action.type in (int, float) else "TEXT")
        assert parameter["paramType"] == expected_type, parameter["name"]
        for pattern in parameter.get("regexes", []):
            re.compile(pattern)


def test_template_defaults_are_the_cli_defaults(metadata):
    actions = cli_option_actions()
    required = {p["name"] for p in metadata["parameters"] if not p["isOptional"]}
    # source is required by the CLI; sink's CLI default is a directory on a worker.
    assert required == {"source", "sink"}
    for parameter in metadata["parameters"]:
        default = actions[parameter["name"]].default
        if parameter["name"] in required or default is None:
            assert "defaultValue" not in parameter, parameter["name"]
            continue
        value = parameter["defaultValue"]
        if isinstance(default, bool):
            assert value == str(default).lower(), parameter["name"]
        elif isinstance(default, (int, float)):
            assert float(value) == default, parameter["name"]
        else:
            assert value == default, parameter["name"]
        for pattern in parameter.get("regexes", []):
            assert re.fullmatch(pattern, value), (parameter["name"], pattern, value)


# --- Dataflow: the Flex Template entry point ------------------------------------------------

def test_flex_entry_turns_launcher_booleans_into_cli_switches():
    entry = load_flex_entry()
    args = entry.run_arguments(["--source=gs://b/archive", "--drop_duplicates=true",
                                "--streaming=false", "--default_timezone=Europe/London",
                                "--kafka_config=security_protocol=SASL_SSL; sasl_mechanism=PLAIN;"])
    assert args[0] == "run"
    assert "--drop_duplicates" in args and "--drop_duplicates=true" not in args
    assert not any(a.startswith("--streaming") for a in args)
    assert "--default_timezone=Europe/London" in args
    # A template parameter is given once: a repeatable option's values are ';'-separated.
    assert [a for a in args if a.startswith("--kafka_config")] == [
        "--kafka_config=security_protocol=SASL_SSL", "--kafka_config=sasl_mechanism=PLAIN"]
    # A launch only submits; the launcher must not wait for the job.
    assert args[-1] == "--no_wait_until_finish"
    options = parse_run_arguments(args[1:])
    assert options.view_as(WirestreamOptions).drop_duplicates is True
    assert options.view_as(StandardOptions).streaming is False
    assert options.view_as(KafkaOptions).kafka_config == [
        "security_protocol=SASL_SSL", "sasl_mechanism=PLAIN"]


def test_flex_entry_runs_the_same_pipeline_as_the_cli(tmp_path):
    out = tmp_path / "events"
    proc = subprocess.run(
        [sys.executable, str(DATAFLOW / "main.py"), "--source=samples/archive",
         f"--sink=jsonl:{out}", "--drop_duplicates=true", "--num_shards=2"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for f in sorted(out.glob("events-*-of-00002.jsonl")) for line in f.open()]
    # The sample archive holds near-duplicates: --drop_duplicates=true reached the CLI.
    assert len(events) > 250
    assert not any(e["is_duplicate"] for e in events)


# --- Dataflow: the launch script ------------------------------------------------------------

@pytest.fixture
def fake_gcloud(tmp_path):
    """A gcloud on PATH that records each call's arguments, one JSON list per line."""
    calls = tmp_path / "gcloud-calls.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    gcloud.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PROJECT": "wirestream-demo", "REGION": "europe-west1", "BUCKET": "gs://wirestream-demo",
           "IMAGE": "europe-west1-docker.pkg.dev/wirestream-demo/wirestream/wirestream:test"}

    def launch(*args):
        proc = subprocess.run(["bash", str(DATAFLOW / "launch.sh"), *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in calls.read_text().splitlines()]
    launch.image = env["IMAGE"]
    return launch


def template_parameters(call) -> dict[str, str]:
    value = call[call.index("--parameters") + 1]
    assert value.startswith("^~^")
    return dict(p.split("=", 1) for p in value[3:].split("~"))


def test_launch_script_passes_template_parameters_the_cli_accepts(fake_gcloud, metadata):
    source = "kafka://broker-1:9092,broker-2:9092/wires?group=wirestream&start=committed"
    (call,) = fake_gcloud("streaming", f"source={source}", "sink=kafka://broker-1:9092/events",
                          "drop_duplicates=true")
    assert call[:3] == ["dataflow", "flex-template", "run"]
    assert "--enable-streaming-engine" in call
    parameters = template_parameters(call)
    assert parameters["source"] == source  # commas survive gcloud's parameter list
    # Workers run the template's own image: code, data files and Beam release match.
    assert parameters.pop("sdk_container_image") == fake_gcloud.image
    assert set(parameters) <= {p["name"] for p in metadata["parameters"]}
    # What the launcher then hands to main.py must parse as a `wirestream run`.
    entry = load_flex_entry()
    launcher_args = [f"--{name}={value}" for name, value in parameters.items()]
    options = parse_run_arguments(entry.run_arguments(launcher_args)[1:])
    assert options.view_as(WirestreamOptions).source == source
    assert options.view_as(WirestreamOptions).drop_duplicates is True


def test_launch_script_batch_mode_and_build(fake_gcloud):
    (batch,) = fake_gcloud("batch", "source=gs://wirestream-demo/archive/**",
                           "sink=jsonl:gs://wirestream-demo/events")
    assert batch[:3] == ["dataflow", "flex-template", "run"]
    assert "--enable-streaming-engine" not in batch
    assert template_parameters(batch)["sink"] == "jsonl:gs://wirestream-demo/events"
    calls = fake_gcloud("build")[1:]
    submit, build = calls
    assert submit[:2] == ["builds", "submit"]
    recipe = yaml.safe_load((REPO / submit[submit.index("--config") + 1]).read_text())
    docker_args = recipe["steps"][0]["args"]
    assert (REPO / docker_args[docker_args.index("-f") + 1]) == DATAFLOW / "Dockerfile"
    assert build[:3] == ["dataflow", "flex-template", "build"]
    assert (REPO / build[build.index("--metadata-file") + 1]) == DATAFLOW / "metadata.json"
    assert build[build.index("--image") + 1] == fake_gcloud.image


# --- Flink: manifests -----------------------------------------------------------------------

def test_submitter_runs_the_console_entry_point_with_options_the_cli_accepts(submitter):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["wirestream"] == "wirestream.pipelines.cli:command"
    container = submitter["container"]
    assert container["command"] == ["wirestream", "run"]
    options = parse_run_arguments(container["args"])
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert options.view_as(StandardOptions).streaming is True
    assert options.view_as(PortableOptions).environment_type == "EXTERNAL"
    assert options.view_as(WirestreamOptions).source.startswith("kafka://")


def test_submitter_targets_the_cluster_and_its_worker_pool(flink_cluster, submitter, worker_pool):
    args = submitter["container"]["args"]
    assert flink_cluster["apiVersion"] == "flink.apache.org/v1beta1"
    # The operator exposes the REST API of FlinkDeployment NAME as service NAME-rest:8081.
    assert flag_value(args, "--flink_master") == f"{flink_cluster['metadata']['name']}-rest:8081"
    flink_version = flink_cluster["spec"]["flinkVersion"].removeprefix("v").replace("_", ".")
    assert flag_value(args, "--flink_version") == flink_version
    assert flink_version in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    assert flink_cluster["spec"]["image"].startswith(f"flink:{flink_version}")
    # The SDK harness sidecar listens where the job's EXTERNAL environment points.
    host, port = flag_value(args, "--environment_config").split(":")
    assert host == "localhost"
    assert worker_pool["args"] == ["--worker_pool"]
    assert int(port) in [p["containerPort"] for p in worker_pool["ports"]]
    assert worker_pool["image"] == submitter["container"]["image"]


def test_kafka_client_settings_reach_submitter_and_workers(submitter, worker_pool, flink_cluster):
    settings = Path(flag_value(submitter["container"]["args"], "--kafka_config_file"))
    tm_volumes = flink_cluster["spec"]["taskManager"]["podTemplate"]["spec"]["volumes"]
    for container, volumes in ((submitter["container"], submitter["pod"]["volumes"]),
                               (worker_pool, tm_volumes)):
        (mount,) = [m for m in container["volumeMounts"] if settings.parent == Path(m["mountPath"])]
        (volume,) = [v for v in volumes if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == "wirestream-kafka-client"


def test_checkpoints_and_state_survive_restarts_on_the_shared_volume(flink_cluster):
    conf = flink_cluster["spec"]["flinkConfiguration"]
    assert conf["execution.checkpointing.interval"]
    assert conf["state.backend.type"] == "rocksdb"
    assert conf["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    (main,) = flink_cluster["spec"]["podTemplate"]["spec"]["containers"]
    assert main["name"] == "flink-main-container"
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in flink_cluster["spec"]["podTemplate"]["spec"]["volumes"]}
    claims = {d["metadata"]["name"]: d for d in
              yaml.safe_load_all((FLINK_K8S / "flink-deployment.yaml").read_text())
              if d["kind"] == "PersistentVolumeClaim"}
    for key in ("state.checkpoints.dir", "state.savepoints.dir", "high-availability.storageDir"):
        path = conf[key].removeprefix("file://")
        (mount_path,) = [m for m in mounts if path.startswith(m + "/")]
        claim = volumes[mounts[mount_path]]["persistentVolumeClaim"]["claimName"]
        assert "ReadWriteMany" in claims[claim]["spec"]["accessModes"], key


# --- images ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", [DEPLOY / "flink" / "Dockerfile", DATAFLOW / "Dockerfile"],
                         ids=["flink", "dataflow"])
def test_image_is_the_beam_sdk_of_the_tested_release_with_the_project_installed(dockerfile):
    instructions = dockerfile_instructions(dockerfile)
    unknown = {k for k, _ in instructions} - DOCKERFILE_INSTRUCTIONS
    assert not unknown, f"{dockerfile}: unknown instructions {unknown}"
    assert instructions[0] == ("FROM", f"apache/beam_python3.11_sdk:{BEAM_VERSION}")
    for sources, _ in copies(instructions):
        for source in sources:
            if not source.startswith("https://"):
                assert (REPO / source).exists(), f"{dockerfile}: COPY of missing {source}"
    copied = {s for sources, _ in copies(instructions) for s in sources}
    assert {"pyproject.toml", "README.md", *FLOORS} <= copied
    installs = [a for k, a in instructions if k == "RUN" and "pip install" in a]
    assert len(installs) == 1 and f'"apache-beam=={BEAM_VERSION}"' in installs[0]


def test_flink_image_carries_the_job_server_jar_the_submitter_names(submitter, flink_cluster):
    instructions = dockerfile_instructions(DEPLOY / "flink" / "Dockerfile")
    ((url,), destination), = [c for c in copies(instructions) if c[0][0].startswith("https://")]
    assert flag_value(submitter["container"]["args"], "--flink_job_server_jar") == destination
    flink_version = flink_cluster["spec"]["flinkVersion"].removeprefix("v").replace("_", ".")
    jar = f"beam-runners-flink-{flink_version}-job-server-{BEAM_VERSION}.jar"
    assert url.endswith(f"/{jar}") and destination.endswith(f"/{jar}")


def test_dataflow_image_launches_main_py_and_runs_workers():
    instructions = dockerfile_instructions(DATAFLOW / "Dockerfile")
    env = dict(a.split("=", 1) for k, a in instructions if k == "ENV")
    main_destinations = [dest for sources, dest in copies(instructions)
                         if sources == ["deploy/dataflow/main.py"]]
    assert main_destinations == [env["FLEX_TEMPLATE_PYTHON_PY_FILE"]]
    launcher = [a for k, a in instructions if k == "COPY" and "--from=" in a]
    assert len(launcher) == 1
    assert "gcr.io/dataflow-templates-base/python311-template-launcher-base" in launcher[0]
    assert launcher[0].split()[-1] == "/opt/google/dataflow/python_template_launcher"
    assert instructions[-1] == ("ENTRYPOINT", '["/opt/apache/beam/boot"]')


def test_the_images_build_context_packages_code_and_data_files(project_wheel):
    """The wheel built from exactly what the Dockerfiles copy; workers get what it holds,
    under the ``wirestream`` name only."""
    names = set(zipfile.ZipFile(project_wheel).namelist())
    packaged = [p for package in FLOORS for p in (REPO / package).rglob("*.py")]
    packaged += [p for p in (REPO / "transforms" / "data").rglob("*") if p.is_file()]
    packaged += [*(REPO / "schemas").glob("*.json"), *(REPO / "schemas").glob("*.sql")]
    expected = {"wirestream/" + p.relative_to(REPO).as_posix() for p in packaged}
    assert any(n.startswith("wirestream/transforms/data/") for n in expected)  # the gazetteers exist
    assert expected <= names, sorted(expected - names)  # a package missing from pyproject's list
    top_level = {n.split("/")[0] for n in names if not n.startswith("wirestream-")}
    assert top_level == {"wirestream"}
    assert "wirestream/__init__.py" not in names  # a namespace: nothing else may own the name's module
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "wirestream = wirestream.pipelines.cli:command" in zipfile.ZipFile(project_wheel).read(entry_points).decode()
