"""agentctl: GitOps for AI agents on Kubernetes.

Agent specs are rendered through Jinja2 blueprints, per environment, into plain Kubernetes
manifests (no cluster needed), then diffed against and reconciled into a live cluster.
"""

__version__ = "0.1.0"
