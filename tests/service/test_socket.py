"""The supervisor's Unix socket: who may connect."""

from __future__ import annotations


def test_the_socket_admits_only_its_operator_unless_shared(tmp_path):
    """The supervisor's socket server (the one `up` starts), without Ray: mode 0600 by default,
    so another local user cannot even connect; the client says why and how."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from sweeplab.service.client import ServiceClient, ServiceError
    from sweeplab.service.state import ServiceState
    from sweeplab.service.supervisor import serve_socket

    folder = Path(tempfile.mkdtemp(prefix="sweeplab-test-"))
    folder.chmod(0o755)  # others may reach the socket: only its own mode can refuse them
    sock = str(folder / "service.sock")
    server = serve_socket(sock, shared=False, handle=lambda request, uid: {"ok": True, "uid": uid, **request})
    try:
        assert os.stat(sock).st_mode & 0o777 == 0o600
        state = ServiceState(home=str(tmp_path), daemon_pid=os.getpid(), ray_address="-", owns_ray=True, socket=sock,
                             operator_uid=os.getuid(), workers=1, frameworks=())
        client = ServiceClient(state, Path(tmp_path / "service.json"))
        assert client.call("ping") == {"ok": True, "uid": os.getuid(), "op": "ping"}
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, as user nobody
            os.setgid(65534)
            os.setuid(65534)
            try:
                client.call("ping")
                message = b"connected"
            except ServiceError as exc:
                message = str(exc).encode()
            os.write(write, message)
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read, "rb") as out:
            said = out.read().decode()
        assert "accepts only its operator" in said and "--shared" in said
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(folder)


def test_a_state_file_wins_over_ray_address_and_the_local_path_imports_no_ray(tmp_path):
    """With a state file here, `find_service` returns the socket client without joining the
    cluster $RAY_ADDRESS names (nor importing Ray); RAY_ADDRESS=local names no cluster to search."""
    import json
    import os
    import subprocess
    import sys

    from sweeplab.service.state import ServiceState, write_state

    home = tmp_path / "home"
    write_state(home / ".sweeplab" / "service.json", ServiceState(
        home=str(home), daemon_pid=os.getpid(), ray_address="127.0.0.1:1", owns_ray=False, socket="/nowhere.sock",
        operator_uid=os.getuid(), workers=1, frameworks=()))
    (tmp_path / "empty").mkdir()
    code = ("import json, sys; from sweeplab.service.client import find_service; s = find_service();"
            "print(json.dumps([type(s).__name__, s and s.service, s and s.through_ray, 'ray' in sys.modules]))")
    env = {k: v for k, v in os.environ.items() if k != "SWEEPLAB_SERVICE"}
    for folder, address, expected in ((home, "127.0.0.1:1", ["ServiceClient", str(home / ".sweeplab" / "service.json"),
                                                              False, False]),
                                      (tmp_path / "empty", "local", ["NoneType", None, None, False])):
        out = subprocess.run([sys.executable, "-c", code], cwd=folder, env={**env, "RAY_ADDRESS": address},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == expected


def test_a_ray_address_that_does_not_answer_is_refused_at_once_naming_it(tmp_path):
    """No state file, and $RAY_ADDRESS names a port where nothing listens: `status` and `run --detach`
    say at once (not after Ray's minutes of retries) that the cluster does not answer, name the
    variable and how to run without it, and exit 1."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    sweeplab = str(Path(sys.executable).with_name("sweeplab"))
    env = {**{k: v for k, v in os.environ.items() if k != "SWEEPLAB_SERVICE"}, "RAY_ADDRESS": address}
    (tmp_path / "spec.yaml").write_text(
        "study: s\nmetric: value\ntrials: 1\nobjective: {framework: python, callable: 'x:y'}\n"
        "space: {x: {type: float, low: 0, high: 1}}\n")
    for cmd in (["status"], ["run", "spec.yaml", "--detach"]):
        started = time.monotonic()
        out = subprocess.run([sweeplab, *cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 1, (cmd, out.stdout, out.stderr)
        assert f"the Ray cluster at '{address}' does not answer" in out.stderr, out.stderr
        assert "$RAY_ADDRESS" in out.stderr and "unset" in out.stderr, out.stderr
        assert time.monotonic() - started < 30, "the refusal must not wait out Ray's retries"
