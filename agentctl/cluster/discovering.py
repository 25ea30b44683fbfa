"""Which APIs the cluster serves: two requests of aggregated discovery (`/api` and `/apis` as
`APIGroupDiscoveryList`, GA since Kubernetes 1.30) give every group, version and resource.

Output: `Resources`, answering for `apiVersion` + `kind` the collection path of the resource and
whether it is namespaced, and naming the capability when it is not served. `Resources.defining`
adds the kinds that CustomResourceDefinitions of the run define and the cluster does not serve
yet, as pending: a CRD and objects of its kind can be created in one run (the CRD stage comes
first and waits until it is Established), as Flux and Helm do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentctl.cluster.connecting import Client
from agentctl.errors import ClusterError, Problem
from agentctl.manifests import Manifest

CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")

_AGGREGATED = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
               "application/json")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    pending: bool = False
    """Defined by a CustomResourceDefinition of this run and not served yet: it holds no
    objects to list, and nothing of it can be dry-run before that CRD is Established."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection(self, namespace: str = "") -> str:
        """The path of the resource's collection (in `namespace`, when namespaced)."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def path(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


class Resources:
    """Every served (group, version, kind), and each group's preferred version."""

    def __init__(self, resources: list[Resource]) -> None:
        self._all = resources
        self._exact = {(r.group, r.version, r.kind): r for r in resources}
        self._preferred: dict[tuple[str, str], Resource] = {}
        for resource in resources:  # discovery lists versions in preference order
            self._preferred.setdefault((resource.group, resource.kind), resource)

    def get(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        return self._exact.get((group, version, kind))

    def preferred(self, group: str, kind: str) -> Resource | None:
        return self._preferred.get((group, kind))

    def defining(self, manifests: Iterable[Manifest]) -> Resources:
        """These resources and, pending, every served version of each kind that one of the
        `manifests` (a CustomResourceDefinition) defines and the cluster serves in no version.
        A kind served already is left as discovery found it: its objects must be listed."""
        pending = [resource for manifest in manifests for resource in defined(manifest)
                   if (resource.group, resource.kind) not in self._preferred]
        return Resources([*self._all, *pending]) if pending else self

    def require(self, api_version: str, kind: str) -> Resource:
        """The resource, or ClusterError naming the capability the cluster lacks."""
        found = self.get(api_version, kind)
        if found is None:
            raise ClusterError([Problem(message=missing(api_version, kind))])
        return found


def defined(manifest: Manifest) -> list[Resource]:
    """The served versions of the kind a CustomResourceDefinition defines, as pending
    resources; none for any other object, or a CRD too malformed to tell (the API server
    refuses it at its apply)."""
    if (manifest.ref.group, manifest.ref.kind) != CRD:
        return []
    spec = manifest.body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    names = spec.get("names")
    names = names if isinstance(names, dict) else {}
    group, kind = str(spec.get("group") or ""), str(names.get("kind") or "")
    plural, versions = str(names.get("plural") or ""), spec.get("versions")
    if not group or not kind or not plural or not isinstance(versions, list):
        return []
    return [Resource(group, str(v["name"]), kind, plural, spec.get("scope") == "Namespaced",
                     pending=True)
            for v in versions if isinstance(v, dict) and v.get("served") is True and v.get("name")]


def missing(api_version: str, kind: str) -> str:
    return (f"the cluster does not serve {api_version}/{kind} (capability "
            f"{api_version}/{kind}: install its CRD or remove what renders it)")


def discover(client: Client) -> Resources:
    """Every resource the cluster serves (not subresources)."""
    found: list[Resource] = []
    for path in ("/api", "/apis"):
        response = client.request("GET", path, accept=_AGGREGATED, purpose="GET discovery")
        if not response.ok:
            response.fail(f"discovery ({path})", client.server)
        body = response.body if isinstance(response.body, dict) else {}
        if body.get("kind") != "APIGroupDiscoveryList":
            raise ClusterError(f"{client.server} does not serve aggregated discovery "
                               "(Kubernetes 1.30 or later is needed)")
        for group in body.get("items") or []:
            name = str((group.get("metadata") or {}).get("name") or "")
            for version in group.get("versions") or []:
                for resource in version.get("resources") or []:
                    kind = (resource.get("responseKind") or {}).get("kind")
                    if not kind:
                        continue
                    found.append(Resource(name, str(version.get("version")), str(kind),
                                          str(resource.get("resource")),
                                          resource.get("scope") == "Namespaced"))
    return Resources(found)
