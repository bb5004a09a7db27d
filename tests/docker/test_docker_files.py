"""The files under docker/, checked by parsing them: no Docker engine or Kubernetes is needed.

- compose.yaml: the services exist, every published port is bound to 127.0.0.1, every secret is a
  required variable (``${VAR:?message}``) with no default anywhere, MLflow runs with basic auth
  and serves artifacts, the Ray workers join the head and scale, and every command a service
  runs exists in the image (console scripts of packages the Dockerfile installs, which this
  venv has too, or scripts the Dockerfile copies in); ``docker compose config`` renders it when
  the compose plugin is installed.
- Dockerfile: parsed line by line (base, non-root user, pinned installs, copied scripts).
- the entrypoint scripts run for real, with stand-ins for `ray` and `sweeplab`.
- kuberay/rayjob.yaml: a RayJob whose secrets come from a Secret.
"""

from __future__ import annotations

import configparser
import importlib.util
import itertools
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points, requires
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
RAYJOB_FILE = DOCKER / "kuberay" / "rayjob.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
AUTH_INI = DOCKER / "mlflow-auth" / "basic_auth.ini"
VENV_BIN = Path(sys.executable).parent

SERVICES = {"postgres", "mlflow", "ray-head", "ray-worker", "submit"}
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")
# Executables the python:3.11-slim base image itself provides.
BASE_IMAGE_COMMANDS = {"python", "python3", "sh", "bash"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; `$${` is a literal `${`.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
# user:password@ in a URL
URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:(\$\{[^}]*\}|[^@\s]+)@")
REQUIRED_FORM = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$")

SECRETS_ENV = {
    "SWEEPLAB_DB_PASSWORD": "db-password-for-test",
    "MLFLOW_ADMIN_PASSWORD": "admin-password-for-test",
    "MLFLOW_SECRET_KEY": "secret-key-for-test",
    "RAY_AUTH_TOKEN": "0" * 64,
}


def is_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


# ---------------------------------------------------------------- parsing helpers
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "compose.yaml has no services"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, `\\` continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def copy_targets() -> dict[str, Path]:
    """Image path -> repository path of every single-file COPY in the Dockerfile."""
    targets: dict[str, Path] = {}
    for keyword, args in dockerfile_instructions():
        if keyword != "COPY":
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        *sources, dest = words
        if len(sources) == 1 and not dest.endswith("/") and not (ROOT / sources[0]).is_dir():
            targets[dest] = ROOT / sources[0]
    return targets


def pip_install_lines() -> list[str]:
    lines = []
    for keyword, args in dockerfile_instructions():
        if keyword == "RUN":
            lines += [part.strip() for part in re.split(r"&&|;;|;", args) if "pip install" in part]
    return lines


def installed_distributions() -> set[str]:
    """Distributions the Dockerfile installs: the project, its dependencies, and explicit requirements."""
    names = {"sweeplab"}
    deps = [dep for dep in requires("sweeplab") or [] if "extra ==" not in dep]
    names |= {re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0] for dep in deps}
    for line in pip_install_lines():
        for word in re.findall(r'"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?(?:==[^"]*)?"', line):
            names.add(word)
    return {n.lower().replace("_", "-") for n in names}


def console_script_dists(name: str) -> set[str]:
    """The distributions of this venv that provide console script ``name``."""
    return {ep.dist.name.lower().replace("_", "-") for ep in entry_points(group="console_scripts", name=name)
            if ep.dist is not None}


def as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def string_values(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from string_values(key)
            yield from string_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from string_values(item)
    elif isinstance(node, str):
        yield node


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def uses_sweeplab_image(service: dict[str, Any]) -> bool:
    return "build" in service or "sweeplab" in str(service.get("image", ""))


# ---------------------------------------------------------------- compose: services and ports
def test_compose_has_the_services(services: dict[str, Any]) -> None:
    assert SERVICES <= set(services), f"missing services: {sorted(SERVICES - set(services))}"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "tools" in services["submit"].get("profiles", []), "submit must be a tool (profile tools), not started by up"
    for name in SERVICES - {"postgres"}:
        assert uses_sweeplab_image(services[name]), f"{name} must run the sweeplab image"
    build = services["mlflow"]["build"]
    assert build["dockerfile"] == "docker/Dockerfile" and (DOCKER / build["context"] / build["dockerfile"]).is_file()


def test_every_published_port_is_bound_to_loopback(services: dict[str, Any]) -> None:
    published = 0
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name}: network_mode host publishes every port"
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", f"{name}: port {port} not bound to 127.0.0.1"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: port {port!r} must start with 127.0.0.1:"
    assert published, "expected the MLflow UI and the Ray dashboard to be published on 127.0.0.1"
    head_ports = " ".join(str(p) for p in services["ray-head"].get("ports", []))
    assert ":6379" not in head_ports, "the Ray GCS port is not published: drivers run inside the cluster"


def test_secrets_are_required_variables_without_defaults() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    seen = set()
    for match in INTERPOLATION.finditer(text):
        name, operator, argument = match.groups()
        if not is_secret(name):
            continue
        seen.add(name)
        assert operator == ":?", f"{match.group(0)}: a secret must be required (${{{name}:?message}}), no default"
        assert argument.strip(), f"{match.group(0)}: say what to set"
    assert set(SECRETS_ENV) <= seen, f"secrets not used: {sorted(set(SECRETS_ENV) - seen)}"


def test_no_literal_secret_in_compose(compose: dict[str, Any], services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if is_secret(key):
                assert REQUIRED_FORM.match(value), f"{name}: {key}={value!r} must be ${{VAR:?message}}"
    for value in string_values(compose):
        for password in URL_CREDENTIALS.findall(value):
            assert REQUIRED_FORM.match(password), f"URL with a literal password: {value!r}"


def test_env_example_documents_every_variable_and_sets_no_secret() -> None:
    documented: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(\S*)", line)
        if match:
            documented.setdefault(match.group(1), "" if line.startswith("#") else match.group(2))
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    used = {m.group(1) for value in string_values(compose) for m in INTERPOLATION.finditer(value)}
    assert used <= set(documented), f"not in .env.example: {sorted(used - set(documented))}"
    for name in SECRETS_ENV:
        assert documented[name] == "", f".env.example must leave {name} empty (a copy must not run as is)"


# ---------------------------------------------------------------- compose: what each service runs
def test_postgres_creates_the_databases_the_urls_use(services: dict[str, Any], compose: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert "healthcheck" in postgres
    mounts = [str(v) for v in postgres["volumes"]]
    assert any(m.endswith(":/var/lib/postgresql/data") for m in mounts), "the database needs a volume"
    init = [m for m in mounts if ":/docker-entrypoint-initdb.d" in m]
    assert init, "the init scripts must be mounted"
    init_dir = DOCKER / init[0].split(":")[0]
    sql = " ".join(p.read_text(encoding="utf-8") for p in sorted(init_dir.glob("*.sql")))
    created = set(re.findall(r"CREATE DATABASE (\w+)", sql, flags=re.IGNORECASE))
    assert {"optuna", "mlflow"} <= created
    used = {m for v in string_values(compose) for m in re.findall(r"postgresql://.*?@postgres:5432/(\w+)", v)}
    assert used and used <= created, f"URLs name databases never created: {sorted(used - created)}"
    assert environment(services["ray-head"])["SWEEPLAB_STORAGE"].endswith("@postgres:5432/optuna")


def test_mlflow_runs_basic_auth_and_serves_artifacts(services: dict[str, Any]) -> None:
    from mlflow.cli import server
    from mlflow.environment_variables import (
        MLFLOW_AUTH_ADMIN_PASSWORD,
        MLFLOW_FLASK_SERVER_SECRET_KEY,
    )

    mlflow = services["mlflow"]
    argv = as_argv(mlflow["command"])
    assert argv[:2] == ["mlflow", "server"]
    pairs = list(itertools.pairwise(argv))
    assert ("--app-name", "basic-auth") in pairs
    assert "--serve-artifacts" in argv and ("--artifacts-destination", "/mlartifacts") in pairs
    assert ("--host", "0.0.0.0") in pairs and ("--port", "5000") in pairs
    known = {opt for p in server.params for opt in p.opts + p.secondary_opts}
    unknown = [a for a in argv[2:] if a.startswith("--") and a.split("=")[0] not in known]
    assert not unknown, f"`mlflow server` has no option {unknown}"
    assert list(entry_points(group="mlflow.app", name="basic-auth")), "mlflow has no basic-auth app"
    env = environment(mlflow)
    store_env = next(p.envvar for p in server.params if p.name == "backend_store_uri")
    assert env[store_env].startswith("postgresql://") and env[store_env].endswith("@postgres:5432/mlflow")
    # The names MLflow itself reads, from the installed MLflow.
    assert "MLFLOW_ADMIN_PASSWORD" in env[MLFLOW_AUTH_ADMIN_PASSWORD.name]
    assert "MLFLOW_SECRET_KEY" in env[MLFLOW_FLASK_SERVER_SECRET_KEY.name]
    assert any(str(v).endswith(":/mlartifacts") for v in mlflow["volumes"]), "artifacts need a volume"
    # The drivers log to it with the admin credentials.
    driver = environment(services["submit"])
    assert driver["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert driver["MLFLOW_TRACKING_PASSWORD"] == env[MLFLOW_AUTH_ADMIN_PASSWORD.name]


def _mlflow_auth_config_module() -> Any:
    """mlflow.server.auth.config, loaded alone: the package itself needs Flask-WTF (mlflow[auth]),
    which the image installs but the development venv may lack."""
    import mlflow

    path = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("_mlflow_auth_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_basic_auth_template_has_the_real_keys_and_no_password() -> None:
    fields = set(_mlflow_auth_config_module().AuthConfig._fields)

    parser = configparser.ConfigParser()
    parser.read(AUTH_INI, encoding="utf-8")
    keys = set(parser["mlflow"])
    assert keys <= fields, f"unknown basic-auth keys: {sorted(keys - fields)}"
    assert {"default_permission", "database_uri", "admin_username", "authorization_function"} <= keys
    assert "admin_password" not in keys, "the admin password comes from the environment, never from this file"
    assert parser["mlflow"]["database_uri"] == "@MLFLOW_AUTH_DATABASE_URI@"


def test_ray_head_and_workers(services: dict[str, Any]) -> None:
    from ray.scripts.scripts import start, status

    head, worker = services["ray-head"], services["ray-worker"]
    head_argv, worker_argv = as_argv(head["command"]), as_argv(worker["command"])
    assert head_argv[:3] == ["ray", "start", "--head"] and "--port=6379" in head_argv and "--block" in head_argv
    assert "--dashboard-host=0.0.0.0" in head_argv
    assert worker_argv[:2] == ["ray", "start"] and "--address=ray-head:6379" in worker_argv
    assert "--block" in worker_argv and "--head" not in worker_argv
    known = {opt for p in start.params for opt in p.opts + p.secondary_opts}
    for argv in (head_argv, worker_argv):
        unknown = [a for a in argv[2:] if a.startswith("--") and a.split("=")[0] not in known]
        assert not unknown, f"`ray start` has no option {unknown}"
    health = as_argv(head["healthcheck"]["test"])
    assert health[1:3] == ["ray", "status"]
    assert {a.split("=")[0] for a in health[3:]} <= {opt for p in status.params for opt in p.opts}
    # Scalable: `up --scale ray-worker=N` needs no fixed name and no host port.
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert "replicas" in worker.get("deploy", {})
    # The workers never open the study's storage nor MLflow, so they hold no database or MLflow secret.
    assert not {k for k in environment(worker) if k.startswith(("SWEEPLAB_", "MLFLOW_"))}


def test_every_ray_node_uses_token_authentication(services: dict[str, Any]) -> None:
    for name in ("ray-head", "ray-worker", "submit"):
        env = environment(services[name])
        assert env.get("RAY_AUTH_MODE") == "token", f"{name}: RAY_AUTH_MODE must be token"
        assert REQUIRED_FORM.match(env.get("RAY_AUTH_TOKEN", "")), f"{name}: RAY_AUTH_TOKEN must be required"


def test_submit_runs_the_spec_against_the_head(services: dict[str, Any]) -> None:
    submit = services["submit"]
    assert as_argv(submit["entrypoint"]) == ["sweeplab-submit"]
    env = environment(submit)
    assert env["RAY_ADDRESS"] == "ray-head:6379"
    assert env["SWEEPLAB_STORAGE"].endswith("@postgres:5432/optuna")
    specs = [str(v) for v in submit["volumes"] if str(v).split(":")[1] == "/specs"]
    assert specs and (DOCKER / specs[0].split(":")[0]).resolve() == ROOT / "examples"
    spec = env["SPEC"].split(":-", 1)[-1].rstrip("}")
    assert (ROOT / "examples" / spec).is_file(), f"the default SPEC {spec} is not in examples/"


def test_every_command_a_service_runs_is_in_the_image(services: dict[str, Any]) -> None:
    copied = {Path(dest).name: (dest, src) for dest, src in copy_targets().items()}
    installed = installed_distributions()
    checked = set()

    def check(name: str, where: str) -> None:
        checked.add(name)
        if name in copied:
            dest, src = copied[name]
            assert dest.startswith("/usr/local/bin/"), f"{where}: {dest} is not on PATH"
            assert src.is_file(), f"{where}: {name} is copied from {src}, which does not exist"
            assert os.access(src, os.X_OK), f"{where}: {src} is not executable (chmod +x)"
            assert src.read_text(encoding="utf-8").startswith("#!"), f"{where}: {src} has no #! line"
            return
        if name in BASE_IMAGE_COMMANDS:
            return
        dists = console_script_dists(name)
        assert dists, f"{where}: `{name}` is no console script of this venv nor a script the Dockerfile copies"
        assert dists & installed, f"{where}: `{name}` comes from {sorted(dists)}, which the Dockerfile does not install"
        assert (VENV_BIN / name).is_file(), f"{where}: {VENV_BIN / name} missing"

    for name, service in services.items():
        if not uses_sweeplab_image(service):
            continue
        entrypoint, command = as_argv(service.get("entrypoint")), as_argv(service.get("command"))
        if entrypoint:
            check(entrypoint[0], f"{name} entrypoint")
        # Our entrypoint scripts exec their arguments, so the command runs too.
        if command:
            check(command[0], f"{name} command")
        health = as_argv(service.get("healthcheck", {}).get("test"))
        if health[:1] == ["CMD"]:
            check(health[1], f"{name} healthcheck")
    # What the copied scripts run.
    for dest, src in copy_targets().items():
        if dest.startswith("/usr/local/bin/"):
            text = src.read_text(encoding="utf-8")
            for cmd in re.findall(r"^\s*(?:exec\s+)?(ray|sweeplab|mlflow|python)\b", text, flags=re.MULTILINE):
                check(cmd, src.name)
    assert {"mlflow", "ray", "sweeplab", "sweeplab-submit", "sweeplab-mlflow-auth"} <= checked


# ---------------------------------------------------------------- docker compose config
def _compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin), else a standalone v2 `docker-compose`; None when neither is here.

    `config` renders the file offline: no Docker engine is needed.
    """
    candidates = []
    if shutil.which("docker"):
        candidates.append([shutil.which("docker") or "docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append([shutil.which("docker-compose") or "docker-compose"])
    for cmd in candidates:
        try:
            probe = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").split(".")[0] not in ("", "0", "1"):
            return cmd
    return None


def test_docker_compose_config_renders(tmp_path: Path) -> None:
    compose_cmd = _compose_command()
    if compose_cmd is None:
        pytest.skip("Docker Compose v2 is not installed (neither `docker compose` nor a v2 `docker-compose`); "
                    "only this rendering check needs it")
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("", encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if k not in SECRETS_ENV}
    cmd = [*compose_cmd, "--env-file", str(empty_env), "-f", str(COMPOSE_FILE), "--profile", "tools", "config"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**base, **SECRETS_ENV})
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert SERVICES <= set(rendered["services"])
    for service in rendered["services"].values():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", port
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=base)
    assert refused.returncode != 0, "compose must refuse to render without the secrets"
    assert any(name in refused.stderr + refused.stdout for name in SECRETS_ENV), refused.stderr


# ---------------------------------------------------------------- Dockerfile
def test_dockerfile_base_user_and_pinned_install() -> None:
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    assert keywords[0] == "FROM" or (keywords[0] == "ARG" and "FROM" in keywords)
    froms = [a for k, a in instructions if k == "FROM"]
    assert froms == ["python:3.11-slim"], froms
    users = [a for k, a in instructions if k == "USER"]
    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"USER {users[-1]} is root"
    assert users[-1].split(":")[0].isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    assert [a for k, a in instructions if k == "WORKDIR"][-1] == "/work"
    lines = pip_install_lines()
    assert lines and all("-c constraints.txt" in line for line in lines), lines
    assert any('".[${EXTRAS}]"' in line for line in lines), "sweeplab must be installed with its extras"
    assert any('"torch==2.13.0"' in line and "TORCH_INDEX_URL" in line for line in lines)
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu", "CPU torch by default"
    assert args["EXTRAS"] == "torch"
    assert any(k == "COPY" and a.split()[0] == "constraints.txt" for k, a in instructions)


def test_dockerfile_bakes_in_no_secret() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword in {"ENV", "ARG"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
            assert not any(is_secret(n) for n in names), f"{keyword} {args}: secrets come at run time"
        if keyword == "COPY":
            assert ".env" not in args and " . " not in f" {args} ", f"COPY {args}: copy named paths only"


def test_dockerfile_copies_exist() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword != "COPY":
            continue
        *sources, _dest = [w for w in args.split() if not w.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    scripts = {dest: src for dest, src in copy_targets().items() if dest.startswith("/usr/local/bin/")}
    assert scripts
    for src in scripts.values():
        assert src.stat().st_mode & stat.S_IXUSR, f"{src} must be executable"


# ---------------------------------------------------------------- the entrypoint scripts, run
def _script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_", "SPEC"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_mlflow_auth_script_renders_the_config_mlflow_reads(tmp_path: Path) -> None:
    uri = "postgresql://sweeplab:p%40ss|w&rd@postgres:5432/mlflow_auth"
    config = tmp_path / "auth" / "basic_auth.ini"
    import mlflow

    # MLflow's own reader of the file (loaded alone, see _mlflow_auth_config_module).
    config_py = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    read = ("import importlib.util as u, sys; s = u.spec_from_file_location('c', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); c = m.read_auth_config(); "
            "print(c.database_uri); print(c.admin_username); print(c.admin_password)")
    env = _script_env(
        MLFLOW_AUTH_DATABASE_URI=uri,
        MLFLOW_AUTH_ADMIN_PASSWORD="admin-password-for-test",
        MLFLOW_FLASK_SERVER_SECRET_KEY="secret-key-for-test",
        SWEEPLAB_MLFLOW_AUTH_TEMPLATE=str(AUTH_INI),
        MLFLOW_AUTH_CONFIG_PATH=str(config),
    )
    done = subprocess.run(["sh", str(DOCKER / "scripts" / "mlflow-auth.sh"), "python", "-c", read, str(config_py)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [uri, "admin", "admin-password-for-test"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "admin-password-for-test" not in config.read_text(encoding="utf-8")


@pytest.mark.parametrize("missing", ["MLFLOW_AUTH_DATABASE_URI", "MLFLOW_AUTH_ADMIN_PASSWORD",
                                     "MLFLOW_FLASK_SERVER_SECRET_KEY"])
def test_mlflow_auth_script_refuses_a_missing_secret(tmp_path: Path, missing: str) -> None:
    values = {"MLFLOW_AUTH_DATABASE_URI": "postgresql://u:p@h/db", "MLFLOW_AUTH_ADMIN_PASSWORD": "x" * 12,
              "MLFLOW_FLASK_SERVER_SECRET_KEY": "k", "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "a.ini")}
    del values[missing]
    done = subprocess.run(["sh", str(DOCKER / "scripts" / "mlflow-auth.sh"), "true"],
                          capture_output=True, text=True, timeout=60, env=_script_env(**values))
    assert done.returncode != 0 and missing in done.stderr
    assert not (tmp_path / "a.ini").exists()


def _stub_bin(tmp_path: Path) -> Path:
    """`ray` and `sweeplab` stand-ins that record their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ray", "sweeplab"):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/{name}.args"\n', encoding="utf-8")
        stub.chmod(0o755)
    return bin_dir


def test_submit_script_joins_as_a_zero_cpu_node_then_runs_the_spec(tmp_path: Path) -> None:
    from sweeplab.cli import build_parser

    spec = ROOT / "examples" / "seed_mlp_torch.yaml"
    env = _script_env(SPEC=str(spec), RAY_ADDRESS="ray-head:6379")
    env["PATH"] = f"{_stub_bin(tmp_path)}{os.pathsep}{env['PATH']}"
    done = subprocess.run(["sh", str(DOCKER / "scripts" / "submit.sh"), "--trials", "3", "--json"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    ray_args = (tmp_path / "ray.args").read_text(encoding="utf-8").split()
    assert ray_args[0] == "start" and "--address=ray-head:6379" in ray_args
    assert "--num-cpus=0" in ray_args and "--num-gpus=0" in ray_args and "--block" not in ray_args
    run_args = (tmp_path / "sweeplab.args").read_text(encoding="utf-8").split()
    assert run_args == ["run", str(spec), "--address", "ray-head:6379", "--trials", "3", "--json"]
    parsed = build_parser().parse_args(run_args)
    assert (parsed.command, parsed.address, parsed.trials) == ("run", "ray-head:6379", 3)


@pytest.mark.parametrize(("spec", "message"), [(None, "set SPEC"), ("no-such-spec.yaml", "not found")])
def test_submit_script_refuses_a_missing_spec(tmp_path: Path, spec: str | None, message: str) -> None:
    env = _script_env(**({"SPEC": spec} if spec else {}))
    env["PATH"] = f"{_stub_bin(tmp_path)}{os.pathsep}{env['PATH']}"
    done = subprocess.run(["sh", str(DOCKER / "scripts" / "submit.sh")], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode != 0 and message in done.stderr
    assert not (tmp_path / "ray.args").exists(), "nothing may start before the spec is found"


# ---------------------------------------------------------------- KubeRay
@pytest.fixture(scope="module")
def rayjob() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(RAYJOB_FILE.read_text(encoding="utf-8")) if d]
    jobs = [d for d in docs if d.get("kind") == "RayJob"]
    assert len(jobs) == 1, "expected one RayJob"
    return jobs[0]


def _pod_specs(job: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [g["template"]["spec"] for g in groups]


def test_rayjob_runs_sweeplab(rayjob: dict[str, Any]) -> None:
    from sweeplab.cli import build_parser

    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec = rayjob["spec"]
    assert spec["entrypoint"].startswith("sweeplab run ")
    args = build_parser().parse_args(spec["entrypoint"].split()[1:])
    assert args.spec.startswith("/specs/") and (ROOT / "examples" / Path(args.spec).name).is_file()
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["template"]["spec"]["containers"]
    assert cluster["workerGroupSpecs"], "a worker group is needed"
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and group["replicas"] >= 1
        for container in group["template"]["spec"]["containers"]:
            assert container["resources"]["limits"]["cpu"], "workers need CPU resources"
    for pod in _pod_specs(rayjob):
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["image"] == "sweeplab:latest"
            assert "resources" in container
    # The specs come from a ConfigMap mounted where the driver (the head) reads them.
    head_pod = head["template"]["spec"]
    volumes = {v["name"]: v for v in head_pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for c in head_pod["containers"] for m in c.get("volumeMounts", [])}
    assert "configMap" in volumes[mounts["/specs"]]


def test_rayjob_secrets_come_from_a_secret(rayjob: dict[str, Any]) -> None:
    head_env = {e["name"]: e for c in _pod_specs(rayjob)[0]["containers"] for e in c.get("env", [])}
    for name in ("SWEEPLAB_STORAGE", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert "secretKeyRef" in head_env[name].get("valueFrom", {}), f"{name} must come from a Secret"
    for pod in _pod_specs(rayjob):
        for container in pod["containers"]:
            for entry in container.get("env", []):
                if is_secret(entry["name"]) or entry["name"] == "SWEEPLAB_STORAGE":
                    assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], entry
    for value in string_values(rayjob):
        assert not URL_CREDENTIALS.search(value), f"literal credentials in the manifest: {value!r}"
