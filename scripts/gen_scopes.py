"""Generate the built-in section of agentctl/scopes.json from a live API server's discovery.

Kubernetes' published schemas do not say whether a kind is namespaced; discovery does. Point
KUBECONFIG at a cluster of the targeted Kubernetes version (`agentctl sandbox up` starts one) and:

    python scripts/gen_scopes.py          # rewrite `kubernetesVersion` and `builtin`
    python scripts/gen_scopes.py --check  # exit 1 if the file differs from discovery

Every resource of `/api/<version>` and of every version of every `/apis/<group>` is read
(subresources, whose names contain '/', are skipped) and keyed `<group>/<Kind>`, the core group
as '' (`/Namespace`); scope never depends on the version. Kinds served by CustomResourceDefinitions
and groups served by aggregated API servers are not built in and are left out. The `custom`
section (kinds of custom resources agentctl's blueprints render) is kept as it is.

Invariant: the same cluster gives the same bytes (sorted keys, fixed indentation).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "agentctl" / "scopes.json"

Get = Callable[[str], Any]
"""GET a path of the API server, returning the decoded JSON body."""


class DiscoveryError(Exception):
    pass


def discover(get: Get) -> tuple[str, dict[str, bool]]:
    """The server's version and `<group>/<Kind>` → namespaced of every built-in kind it serves."""
    version = str(get("/version")["gitVersion"])
    custom = {(crd["spec"]["group"], crd["spec"]["names"]["kind"])
              for crd in get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]}
    aggregated = {(svc["spec"]["group"], svc["spec"]["version"])
                  for svc in get("/apis/apiregistration.k8s.io/v1/apiservices")["items"]
                  if svc["spec"].get("service")}
    lists = [("", get(f"/api/{v}")) for v in get("/api")["versions"]]
    for group in get("/apis")["groups"]:
        for gv in group["versions"]:
            if (group["name"], gv["version"]) not in aggregated:
                lists.append((group["name"], get(f"/apis/{gv['groupVersion']}")))
    scopes: dict[str, bool] = {}
    for group_name, resource_list in lists:
        for resource in resource_list["resources"]:
            if "/" in resource["name"] or (group_name, resource["kind"]) in custom:
                continue
            key = f"{group_name}/{resource['kind']}"
            namespaced = bool(resource["namespaced"])
            if scopes.get(key, namespaced) != namespaced:
                raise DiscoveryError(f"{key} is namespaced in one version and not in another")
            scopes[key] = namespaced
    return version, dict(sorted(scopes.items()))


def render(version: str, builtin: dict[str, bool], custom: dict[str, bool]) -> str:
    """The data file's text: fixed key order, sorted kinds, two-space indentation."""
    data = {"kubernetesVersion": version, "builtin": dict(sorted(builtin.items())),
            "custom": dict(sorted(custom.items()))}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def client_get(kubeconfig: str | None = None) -> Get:
    """A GET on the cluster of `kubeconfig` (default: $KUBECONFIG, then ~/.kube/config)."""
    from kubernetes import config

    new_client: Any = config.new_client_from_config  # the client is untyped
    api = new_client(config_file=kubeconfig)

    def get(path: str) -> Any:
        _, url, headers, _, _ = api.param_serialize(
            method="GET", resource_path=path, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = api.call_api("GET", url, header_params=headers, _request_timeout=30)
        response.read()
        if response.status != 200:
            raise DiscoveryError(f"GET {path}: HTTP {response.status}")
        return json.loads(response.data)

    return get


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if the file differs from discovery")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
    args = parser.parse_args(argv)
    current = DATA.read_text(encoding="utf-8")
    version, builtin = discover(client_get(args.kubeconfig))
    text = render(version, builtin, json.loads(current)["custom"])
    if text == current:
        return 0
    if args.check:
        print(f"{DATA.relative_to(ROOT)}: out of date; run `python scripts/gen_scopes.py`",
              file=sys.stderr)
        return 1
    DATA.write_text(text, encoding="utf-8")
    print(f"wrote {DATA.relative_to(ROOT)} (Kubernetes {version}, {len(builtin)} built-in kinds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
