{{/*
bench.prepare: layer one agent's spec (agentDefaults < environment defaults < agent < override)
and compute what several objects share: names, labels, the ConfigMap data. Mutates the context
dict it is given (Go templates return only strings).
*/}}
{{- define "bench.prepare" -}}
{{- $v := .Values -}}
{{- $name := .agent.metadata.name -}}
{{- $override := index ($v.overrides | default dict) $name | default dict -}}
{{- $spec := merge (deepCopy $override) (deepCopy .agent.spec) (deepCopy ($v.defaults | default dict)) (deepCopy $v.agentDefaults) -}}
{{- $unsupported := list "scaling" "state" "sidecars" "secrets.mount" -}}
{{- if or $spec.scaling $spec.state $spec.sidecars (dig "secrets" "mount" list $spec) -}}
{{- fail (printf "agent %s uses a section outside this chart (%s)" $name (join ", " $unsupported)) -}}
{{- end -}}
{{- $_ := set . "name" $name -}}
{{- $_ := set . "spec" $spec -}}
{{- $_ := set . "namespace" (.agent.metadata.namespace | default $v.environment.namespace) -}}
{{- $agentLabels := .agent.metadata.labels | default dict -}}
{{- $_ := set . "objectLabels" (merge (dict
      "app.kubernetes.io/name" $name
      "app.kubernetes.io/instance" $name
      "app.kubernetes.io/managed-by" "agentctl"
      "agent.inferensys.com/agent" $name
      "agent.inferensys.com/environment" $v.environment.name
      "applyset.kubernetes.io/part-of" $v.environment.applyset) $agentLabels) -}}
{{- $_ := set . "podLabels" (merge (dict
      "app.kubernetes.io/name" $name
      "app.kubernetes.io/instance" $name
      "app.kubernetes.io/managed-by" "agentctl"
      "agent.inferensys.com/agent" $name
      "agent.inferensys.com/environment" $v.environment.name
      "agent.inferensys.com/track" "main") $agentLabels) -}}
{{- $_ := set . "selector" (dict "app.kubernetes.io/name" $name "agent.inferensys.com/track" "main") -}}
{{- $_ := set . "agentSelector" (dict "app.kubernetes.io/name" $name "agent.inferensys.com/agent" $name) -}}
{{- $_ := set . "serviceSelector" (dict "app.kubernetes.io/name" $name "agent.inferensys.com/agent" $name "agent.inferensys.com/track" "main") -}}
{{- $_ := set . "configMap" (printf "%s-config" $name) -}}
{{- $metricsPort := $spec.observability.metrics.port -}}
{{- $_ := set . "separateMetricsPort" (and $metricsPort (ne (toString $metricsPort) (toString $spec.runtime.port))) -}}
{{- $ports := list (dict "name" "http" "port" $spec.network.service.port "targetPort" "http" "protocol" "TCP") -}}
{{- if .separateMetricsPort }}{{ $ports = append $ports (dict "name" "metrics" "port" $metricsPort "targetPort" "metrics" "protocol" "TCP") }}{{ end -}}
{{- $_ := set . "servicePorts" $ports -}}
{{- $sa := $spec.runtime.serviceAccount | default (dict "create" true) -}}
{{- $_ := set . "serviceAccount" $sa -}}
{{- $tools := list -}}
{{- range $t := $spec.tools | default list -}}
{{- $headers := list -}}
{{- range $h := $t.headersFrom | default list -}}
{{- $headers = append $headers $h.name -}}
{{- end -}}
{{- $tools = append $tools (dict "name" $t.name "type" $t.type "url" $t.url
      "toolNames" ($t.toolNames | default list) "requireApproval" ($t.requireApproval | default list)
      "timeoutSeconds" ($t.timeoutSeconds | default 30) "headers" $headers) -}}
{{- end -}}
{{- $data := dict "model-id" $spec.model.id "model-params.json" (toJson $spec.model.params) "tools.json" (toJson $tools) -}}
{{- with $spec.model.provider }}{{ $_ := set $data "model-provider" . }}{{ end -}}
{{- with $spec.model.endpoint }}{{ $_ := set $data "model-endpoint" . }}{{ end -}}
{{- with (dig "instructions" "systemMessage" "" $spec) }}{{ $_ := set $data "system-message" . }}{{ end -}}
{{- $_ := set . "configData" $data -}}
{{- end -}}

{{/*
bench.emit: finish one object as agentctl does: namespace, ownership labels, the agent's
annotations, then the digest (sha256 of the canonical JSON without the digest annotation).
*/}}
{{- define "bench.emit" -}}
{{- $ctx := .ctx -}}
{{- $body := fromYaml .text -}}
{{- if hasKey $body "Error" }}{{ fail (printf "%s: %s" .what $body.Error) }}{{ end -}}
{{- $meta := $body.metadata -}}
{{- $_ := set $meta "namespace" $ctx.namespace -}}
{{- $_ := set $meta "labels" (merge (deepCopy $ctx.objectLabels) ($meta.labels | default dict)) -}}
{{- $annotations := merge ($meta.annotations | default dict) (deepCopy ($ctx.agent.metadata.annotations | default dict)) -}}
{{- $_ := unset $meta "annotations" -}}
{{- if $annotations }}{{ $_ := set $meta "annotations" $annotations }}{{ end -}}
{{- $digest := printf "sha256:%s" (toJson $body | sha256sum) -}}
{{- $_ := set $annotations "agent.inferensys.com/digest" $digest -}}
{{- $_ := set $meta "annotations" $annotations }}
---
{{ toYaml $body }}
{{- end -}}
