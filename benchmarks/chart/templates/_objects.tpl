{{/* Object bodies; every value is written as JSON (JSON is YAML), as agentctl's finalize does. */}}
{{- define "bench.serviceaccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name | toJson }}
  {{- with .serviceAccount.annotations }}
  annotations: {{ . | toJson }}
  {{- end }}
automountServiceAccountToken: {{ .serviceAccount.automountToken | default false | toJson }}
{{- end -}}

{{- define "bench.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .configMap | toJson }}
data: {{ .configData | toJson }}
{{- end -}}

{{- define "bench.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name | toJson }}
  labels: {"agent.inferensys.com/service-role": "main"}
spec:
  type: {{ .spec.network.service.type | toJson }}
  selector: {{ .serviceSelector | toJson }}
  ports: {{ .servicePorts | toJson }}
{{- end -}}

{{- define "bench.headless" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ printf "%s-headless" .name | toJson }}
  labels: {"agent.inferensys.com/service-role": "headless"}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {{ .serviceSelector | toJson }}
  ports: {{ .servicePorts | toJson }}
{{- end -}}

{{- define "bench.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name | toJson }}
spec:
  maxUnavailable: {{ dig "network" "pdb" "maxUnavailable" 1 .spec | toJson }}
  unhealthyPodEvictionPolicy: "AlwaysAllow"
  selector:
    matchLabels: {{ .agentSelector | toJson }}
{{- end -}}
