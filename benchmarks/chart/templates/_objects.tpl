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
spec:
  type: {{ .spec.network.service.type | toJson }}
  selector: {{ .selector | toJson }}
  ports:
  - name: http
    port: {{ .spec.network.service.port | toJson }}
    targetPort: http
    protocol: TCP
{{- end -}}
