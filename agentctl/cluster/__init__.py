"""The cluster half: the only package that imports `kubernetes`.

connecting (kubeconfig or in-cluster, retries, identity) → discovering (which APIs the cluster
serves) → reading (metadata-only LISTs of the ApplySet's members) → changes (the change set:
digest shortcut, server-side dry-runs, outcomes) → planning (chains them for one environment).
"""
