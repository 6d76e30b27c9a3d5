"""A real S3 endpoint for tests: moto's ``ThreadedMotoServer`` on 127.0.0.1.

    server = start_s3_server()          # raises if moto or s3fs is missing or it cannot start
    server.make_bucket("my-bucket")
    store = FsspecBlobStore("s3://my-bucket/prefix", server.storage_options())
    server.stop()

Dummy credentials are put in the environment (``AWS_ACCESS_KEY_ID=testing``...) while the server
runs, so nothing can reach a real AWS account; the region is left unset.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
_ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
_START_TIMEOUT = 30.0


class S3Server:
    """A running moto S3 server; ``stop()`` shuts it down and restores the environment."""

    def __init__(self, server: Any, endpoint_url: str, saved_env: dict[str, str | None]) -> None:
        self._server = server
        self.endpoint_url = endpoint_url
        self._saved_env = saved_env

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """fsspec/s3fs options that reach this server (a fresh s3fs instance each time)."""
        options: dict[str, Any] = {
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "skip_instance_cache": True,
            "client_kwargs": {"endpoint_url": self.endpoint_url},
        }
        options.update(extra)
        return options

    def filesystem(self) -> Any:
        """A fresh ``s3fs.S3FileSystem`` talking to this server (for checks behind a store)."""
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options())

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name if none is given) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:20]}"
        self.filesystem().mkdir(name)
        return name

    def stop(self) -> None:
        self._server.stop()
        _restore(self._saved_env)


def start_s3_server() -> S3Server:
    """Start moto's S3 server on a free loopback port; raise if it cannot be used."""
    import s3fs  # noqa: F401  (the caller skips when the S3 extras are missing)
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one line per request
    saved_env = {name: os.environ.get(name) for name in _ENV}
    os.environ.update(_ENV)
    # Port 0: the OS picks a free port, so two test runs never race for one.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    # start() waits forever if the server thread dies before it is ready: bound the wait.
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(_START_TIMEOUT)
    if starter.is_alive():
        _restore(saved_env)
        raise RuntimeError(f"moto server did not start within {_START_TIMEOUT:.0f}s")
    host, port = server.get_host_and_port()
    running = S3Server(server, f"http://{host}:{port}", saved_env)
    try:
        running.filesystem().ls("")  # one real request: the server answers S3 calls
    except BaseException:
        running.stop()
        raise
    return running


def _restore(saved_env: dict[str, str | None]) -> None:
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
