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
