"""A fault-injecting HTTP proxy in front of the sandbox's API server, for tests of what a run does
when the server fails mid-run.

The proxy listens on plain HTTP on 127.0.0.1 (the kubeconfig it writes points there, with a
dummy token) and forwards every request to the real API server with the test's own admin
credentials. A `fault` callback sees each request (method, path with query) before it is
forwarded and may answer instead: a status code (with a Kubernetes Status body), or `DROP` to
close the connection without an answer, as a stopped server would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from .kube import Cluster

DROP = -1
Fault = Callable[[str, str], int | None]
"""(method, path with query) → a status to answer with, DROP, or None to forward."""


@contextmanager
def proxy(cluster: Cluster, folder: Path, fault: Fault) -> Iterator[Path]:
    """Run the proxy; yield the path of a kubeconfig that points at it."""
    api: Any = cluster.api
    host = str(api.configuration.host).rstrip("/")
    pool = api.rest_client.pool_manager
    auth = dict(api.configuration.api_key or {})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            verdict = fault(self.command, self.path)
            if verdict == DROP:
                self.close_connection = True
                self.connection.close()
                return
            if verdict is not None:
                data = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "message": "injected fault", "code": verdict}).encode()
                self.send_response(verdict)
                if verdict == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("content-type", "accept")}
            if "authorization" in auth:
                headers["Authorization"] = auth["authorization"]
            answer = pool.request(self.command, host + self.path, body=body, headers=headers,
                                  preload_content=True, retries=False, timeout=60)
            self.send_response(answer.status)
            for name in ("Content-Type", "Date", "Warning"):
                for value in answer.headers.getlist(name):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.data)))
            self.end_headers()
            self.wfile.write(answer.data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = config["current-context"]
    kubeconfig = folder / "faulty-kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "faulty", "cluster": {
            "server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "faulty", "user": {"token": "unused"}}],
        "contexts": [{"name": context, "context": {"cluster": "faulty", "user": "faulty"}}]}))
    try:
        yield kubeconfig
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
