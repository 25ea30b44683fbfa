"""The transport of the cluster half, against a local HTTP server that answers like an overloaded
API server: 429 with Retry-After, 503, a dropped connection; the client retries each (bounded,
honouring Retry-After) and gives up with one clear error. Kubernetes semantics are tested on the
simulated cluster (tests/cluster/); this is only about the wire."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentctl.cluster import connecting
from agentctl.errors import ClusterError


class _Script:
    """What the server answers, in order, per path; then 200 with `{"ok": true}`."""

    def __init__(self) -> None:
        self.plans: dict[str, list[Any]] = {}
        self.seen: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()


def _handler(script: _Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path = self.path.split("?")[0]
            with script.lock:
                script.seen.append((self.command, path, time.monotonic()))
                plan = script.plans.get(path) or []
                step = plan.pop(0) if plan else 200
            if step == "drop":
                self.connection.close()
                return
            body = json.dumps({"ok": True} if step == 200 else
                              {"kind": "Status", "message": f"status {step}"}).encode()
            self.send_response(int(step))
            if step == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PATCH = _answer  # noqa: N815 - http.server's names

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[_Script, Path]]:
    script = _Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "local",
              "clusters": [{"name": "local", "cluster": {
                  "server": f"http://127.0.0.1:{httpd.server_address[1]}"}}],
              "users": [{"name": "u", "user": {"token": "t"}}],
              "contexts": [{"name": "local", "context": {"cluster": "local", "user": "u"}}]}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    try:
        yield script, kubeconfig
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_429_is_retried_after_the_time_the_server_asks(server: tuple[_Script, Path]) -> None:
    script, kubeconfig = server
    script.plans["/x"] = [429, 429]
    client = connecting.connect(connecting.Target(kubeconfig))
    answer = client.request("GET", "/x")
    assert answer.status == 200
    times = [t for method, path, t in script.seen if path == "/x"]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.9  # Retry-After: 1
    assert times[2] - times[1] >= 0.9


def test_5xx_and_dropped_connections_are_retried_with_backoff(
        server: tuple[_Script, Path]) -> None:
    script, kubeconfig = server
    script.plans["/y"] = [503, "drop", 500]
    script.plans["/z"] = [502]
    client = connecting.connect(connecting.Target(kubeconfig))
    assert client.request("PATCH", "/y", body={"a": 1}).status == 200
    assert client.request("GET", "/z").status == 200
    assert [p for _, p, _ in script.seen].count("/y") == 4


def test_retries_are_bounded_and_the_last_answer_is_returned(
        server: tuple[_Script, Path]) -> None:
    script, kubeconfig = server
    script.plans["/down"] = [503] * 50
    client = connecting.connect(connecting.Target(kubeconfig))
    answer = client.request("GET", "/down")
    assert answer.status == 503
    assert answer.message == "status 503"
    assert 2 <= [p for _, p, _ in script.seen].count("/down") <= 8


def test_an_unreachable_server_is_one_cluster_error(tmp_path: Path) -> None:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
              "users": [{"name": "u", "user": {"token": "t"}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    client = connecting.connect(connecting.Target(tmp_path / "kubeconfig"))
    with pytest.raises(ClusterError, match=r"cannot reach http://127\.0\.0\.1:9 "):
        client.request("GET", "/api")


def test_kubeconfig_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"apiVersion": "v1", "kind": "Config",
            "users": [{"name": "u", "user": {"token": "t"}}]}
    first = {**base, "current-context": "a",
             "clusters": [{"name": "a", "cluster": {"server": "http://127.0.0.1:1001"}}],
             "contexts": [{"name": "a", "context": {"cluster": "a", "user": "u"}}]}
    second = {**base,
              "clusters": [{"name": "b", "cluster": {"server": "http://127.0.0.1:1002"}}],
              "contexts": [{"name": "b", "context": {"cluster": "b", "user": "u"}}]}
    (tmp_path / "one").write_text(yaml.safe_dump(first))
    (tmp_path / "two").write_text(yaml.safe_dump(second))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'one'}:{tmp_path / 'two'}")
    assert connecting.connect(connecting.Target()).server.endswith(":1001")
    assert connecting.connect(connecting.Target(env_context="b")).server.endswith(":1002")
    # --context wins over the environment's
    assert connecting.connect(connecting.Target(context="a", env_context="b")).server.endswith(
        ":1001")
    with pytest.raises(ClusterError, match="context 'c'"):
        connecting.connect(connecting.Target(env_context="c"))
    with pytest.raises(ClusterError, match="does not exist"):
        connecting.connect(connecting.Target(kubeconfig=tmp_path / "missing"))
