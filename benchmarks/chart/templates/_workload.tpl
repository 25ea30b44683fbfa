{{/* The Deployment or StatefulSet, mirroring blueprints/agent/workload.yaml.j2. */}}
{{- define "bench.workload" -}}
{{- $name := .name -}}
{{- $spec := .spec -}}
{{- $cm := .configMap -}}
{{- if has $spec.rollout.strategy (list "BlueGreen" "Canary") }}{{ fail (printf "%s: strategy %s is outside this chart" $name $spec.rollout.strategy) }}{{ end -}}
{{- $metrics := $spec.observability.metrics -}}
{{- $metricsPort := $metrics.port | default $spec.runtime.port -}}
{{- $monitor := $metrics.monitor -}}
{{- if has $monitor (list "serviceMonitor" "podMonitor") }}{{ fail (printf "%s: metrics.monitor %s is outside this chart" $name $monitor) }}{{ end -}}
{{- /* Container securityContext: restricted defaults, the agent's keys on top (set key by key:
       Helm's merge would not let an agent's false replace a default true). */ -}}
{{- $containerSecurity := dict "allowPrivilegeEscalation" false "capabilities" (dict "drop" (list "ALL"))
      "readOnlyRootFilesystem" true "runAsNonRoot" true "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- range $k, $val := dig "security" "securityContext" dict $spec }}{{ $_ := set $containerSecurity $k $val }}{{ end -}}
{{- $podSecurity := dict "runAsNonRoot" true "runAsUser" 65532 "runAsGroup" 65532 "fsGroup" 65532
      "fsGroupChangePolicy" "OnRootMismatch" "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- range $k, $val := dig "security" "podSecurityContext" dict $spec }}{{ $_ := set $podSecurity $k $val }}{{ end -}}
{{- /* Environment: downward API, config, model credentials, memory, logging, then the agent's. */ -}}
{{- $env := list
      (dict "name" "POD_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name")))
      (dict "name" "POD_NAMESPACE" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace")))
      (dict "name" "AGENT_NAME" "value" $name)
      (dict "name" "AGENT_CONFIG_DIR" "value" "/etc/agent")
      (dict "name" "MODEL_ID" "valueFrom" (dict "configMapKeyRef" (dict "name" $cm "key" "model-id")))
      (dict "name" "LOG_FORMAT" "value" $spec.observability.logging.format)
      (dict "name" "LOG_LEVEL" "value" $spec.observability.logging.level) -}}
{{- if $spec.model.provider }}{{ $env = append $env (dict "name" "MODEL_PROVIDER" "valueFrom" (dict "configMapKeyRef" (dict "name" $cm "key" "model-provider"))) }}{{ end -}}
{{- if $spec.model.endpoint }}{{ $env = append $env (dict "name" "MODEL_ENDPOINT" "valueFrom" (dict "configMapKeyRef" (dict "name" $cm "key" "model-endpoint"))) }}{{ end -}}
{{- with $spec.model.apiKeySecretRef }}{{ $env = append $env (dict "name" "MODEL_API_KEY" "valueFrom" (dict "secretKeyRef" .)) }}{{ end -}}
{{- $session := $spec.memory.session -}}
{{- $env = append $env (dict "name" "SESSION_BACKEND" "value" $session.backend) -}}
{{- with $session.urlSecretRef }}{{ $env = append $env (dict "name" "SESSION_URL" "valueFrom" (dict "secretKeyRef" .)) }}{{ end -}}
{{- with $spec.memory.longTerm -}}
{{- $env = append $env (dict "name" "MEMORY_BACKEND" "value" .backend) -}}
{{- $env = append $env (dict "name" "MEMORY_URL" "valueFrom" (dict "secretKeyRef" .urlSecretRef)) -}}
{{- $env = append $env (dict "name" "MEMORY_TTL_DAYS" "value" (toString (.ttlDays | default 15))) -}}
{{- with .embeddingModel }}{{ $env = append $env (dict "name" "MEMORY_EMBEDDING_MODEL" "value" .) }}{{ end -}}
{{- end -}}
{{- range $t := $spec.tools | default list -}}
{{- range $h := $t.headersFrom | default list -}}
{{- $env = append $env (dict "name" (printf "TOOL_%s_HEADER_%s" $t.name $h.name | upper | replace "-" "_") "valueFrom" (dict "secretKeyRef" $h.secretKeyRef)) -}}
{{- end -}}
{{- end -}}
{{- range $item := dig "secrets" "env" list $spec -}}
{{- $env = append $env (dict "name" $item.name "valueFrom" (dict "secretKeyRef" $item.secretKeyRef)) -}}
{{- end -}}
{{- range $var := $spec.runtime.env | default list }}{{ $env = append $env $var }}{{ end -}}
{{- /* Resources: GPUs as limits only. */ -}}
{{- $requests := deepCopy ($spec.resources.requests | default dict) -}}
{{- $limits := deepCopy ($spec.resources.limits | default dict) -}}
{{- with $spec.resources.gpu }}{{ $_ := set $limits (.resourceName | default "nvidia.com/gpu") .count }}{{ end -}}
{{- /* Volumes and mounts. */ -}}
{{- $scratch := $spec.resources.scratch -}}
{{- $readOnly := $containerSecurity.readOnlyRootFilesystem -}}
{{- $volumes := list (dict "name" "config" "configMap" (dict "name" $cm)) (dict "name" "tmp" "emptyDir" (dict "sizeLimit" $scratch.tmp)) -}}
{{- $mounts := list (dict "name" "config" "mountPath" "/etc/agent" "readOnly" true) (dict "name" "tmp" "mountPath" "/tmp") -}}
{{- /* A read-only root gets a writable HOME and caches; the pod requests the disk of its
       emptyDirs (the fleet's sizes are whole Gi). */ -}}
{{- $disk := trimSuffix "Gi" $scratch.tmp | int -}}
{{- if $readOnly -}}
{{- $volumes = append $volumes (dict "name" "home" "emptyDir" (dict "sizeLimit" $scratch.home)) -}}
{{- $disk = add $disk (trimSuffix "Gi" $scratch.home | int) -}}
{{- end -}}
{{- with $spec.resources.shmSize -}}
{{- $volumes = append $volumes (dict "name" "dshm" "emptyDir" (dict "medium" "Memory" "sizeLimit" .)) -}}
{{- $mounts = append $mounts (dict "name" "dshm" "mountPath" "/dev/shm") -}}
{{- end -}}
{{- /* Probes; `enabled` defaults to true. */ -}}
{{- $probes := dict -}}
{{- $readiness := $spec.lifecycle.probes.readiness -}}
{{- range $kind := list "readiness" "liveness" -}}
{{- $p := index $spec.lifecycle.probes $kind -}}
{{- if or (not (hasKey $p "enabled")) $p.enabled -}}
{{- $_ := set $probes (printf "%sProbe" $kind) (dict "httpGet" (dict "path" $p.path "port" ($p.port | default "http"))
      "initialDelaySeconds" $p.initialDelaySeconds "periodSeconds" $p.periodSeconds
      "timeoutSeconds" $p.timeoutSeconds "failureThreshold" $p.failureThreshold) -}}
{{- end -}}
{{- end -}}
{{- /* The startup probe: the readiness endpoint by default, failureThreshold from the budget. */ -}}
{{- with $spec.lifecycle.probes.startup -}}
{{- if or (not (hasKey . "enabled")) .enabled -}}
{{- $_ := set $probes "startupProbe" (dict "httpGet" (dict "path" (.path | default $readiness.path) "port" (.port | default ($readiness.port | default "http")))
      "periodSeconds" .periodSeconds "timeoutSeconds" .timeoutSeconds
      "failureThreshold" (div (add .budgetSeconds (sub .periodSeconds 1)) .periodSeconds)) -}}
{{- end -}}
{{- end -}}
{{- $ports := list (dict "name" "http" "containerPort" $spec.runtime.port "protocol" "TCP") -}}
{{- if .separateMetricsPort -}}
{{- $ports = append $ports (dict "name" "metrics" "containerPort" $metrics.port "protocol" "TCP") -}}
{{- end -}}
{{- $podAnnotations := dict "agent.inferensys.com/config-hash" (toJson (dict $cm .configData) | sha256sum) -}}
{{- if eq $monitor "annotations" -}}
{{- $_ := set $podAnnotations "prometheus.io/scrape" "true" -}}
{{- $_ := set $podAnnotations "prometheus.io/port" (toString $metricsPort) -}}
{{- $_ := set $podAnnotations "prometheus.io/path" $metrics.path -}}
{{- end -}}
{{- $_ := set $requests "ephemeral-storage" (printf "%dGi" $disk) -}}
{{- if $readOnly -}}
{{- $env = concat $env (list (dict "name" "HOME" "value" "/home/agent")
      (dict "name" "XDG_CACHE_HOME" "value" "/home/agent/.cache")
      (dict "name" "HF_HOME" "value" "/home/agent/.cache/huggingface")
      (dict "name" "TRITON_CACHE_DIR" "value" "/home/agent/.cache/triton")) -}}
{{- $mounts = append $mounts (dict "name" "home" "mountPath" "/home/agent") -}}
{{- end -}}
{{- $sa := .serviceAccount -}}
{{- $container := dict "name" "agent" "image" $spec.runtime.image "ports" $ports "env" $env
      "resources" (dict "requests" $requests "limits" $limits) "securityContext" $containerSecurity
      "volumeMounts" $mounts -}}
{{- range $key := list "imagePullPolicy" "command" "args" "envFrom" -}}
{{- with index $spec.runtime $key }}{{ $_ := set $container $key . }}{{ end -}}
{{- end -}}
{{- range $key, $probe := $probes }}{{ $_ := set $container $key $probe }}{{ end -}}
{{- $drain := $spec.lifecycle.preStop -}}
{{- $hooks := dict "preStop" (dict "sleep" (dict "seconds" $drain.drainSeconds)) -}}
{{- with $drain.path }}{{ $hooks = dict "preStop" (dict "httpGet" (dict "path" . "port" ($drain.port | default "http"))) }}{{ end -}}
{{- with $spec.lifecycle.postStart }}{{ $_ := set $hooks "postStart" (dict "exec" (dict "command" .command)) }}{{ end -}}
{{- $_ := set $container "lifecycle" $hooks -}}
{{- $pod := dict "serviceAccountName" (ternary $name $sa.name (eq (toString $sa.create) "true"))
      "automountServiceAccountToken" ($sa.automountToken | default false)
      "terminationGracePeriodSeconds" $spec.lifecycle.terminationGracePeriodSeconds
      "enableServiceLinks" false "securityContext" $podSecurity
      "containers" (list $container) "volumes" $volumes -}}
{{- range $key := list "nodeSelector" "tolerations" "affinity" "priorityClassName" "runtimeClassName" "imagePullSecrets" -}}
{{- with index $spec.runtime $key }}{{ $_ := set $pod $key . }}{{ end -}}
{{- end -}}
{{- /* Placement: more than one replica spreads softly over nodes (the fleet declares no zones). */ -}}
{{- if hasKey $spec.runtime "topologySpreadConstraints" -}}
{{- with $spec.runtime.topologySpreadConstraints }}{{ $_ := set $pod "topologySpreadConstraints" . }}{{ end -}}
{{- else if gt (int ($spec.replicas | default 1)) 1 -}}
{{- $_ := set $pod "topologySpreadConstraints" (list (dict "maxSkew" 1 "topologyKey" "kubernetes.io/hostname"
      "whenUnsatisfiable" "ScheduleAnyway" "labelSelector" (dict "matchLabels" .agentSelector))) -}}
{{- end -}}
{{- $workload := dict "replicas" ($spec.replicas | default 1)
      "revisionHistoryLimit" $spec.rollout.revisionHistoryLimit
      "selector" (dict "matchLabels" .selector)
      "template" (dict "metadata" (dict "labels" .podLabels "annotations" $podAnnotations) "spec" $pod) -}}
{{- if eq $spec.workload.kind "Deployment" -}}
{{- $_ := set $workload "progressDeadlineSeconds" $spec.rollout.progressDeadlineSeconds -}}
{{- if eq $spec.rollout.strategy "Recreate" -}}
{{- $_ := set $workload "strategy" (dict "type" "Recreate") -}}
{{- else -}}
{{- $_ := set $workload "strategy" (dict "type" "RollingUpdate" "rollingUpdate" $spec.rollout.rollingUpdate) -}}
{{- end -}}
{{- else -}}
{{- $_ := set $workload "serviceName" (printf "%s-headless" $name) -}}
{{- $_ := set $workload "podManagementPolicy" "Parallel" -}}
{{- $_ := set $workload "updateStrategy" (dict "type" "RollingUpdate") -}}
{{- $_ := set $workload "persistentVolumeClaimRetentionPolicy" (dict "whenDeleted" "Retain" "whenScaled" "Retain") -}}
{{- end -}}
apiVersion: apps/v1
kind: {{ $spec.workload.kind | toJson }}
metadata:
  name: {{ $name | toJson }}
  labels: {"agent.inferensys.com/track": "main"}
  {{- with $spec.description }}
  annotations:
    agent.inferensys.com/description: {{ . | toJson }}
  {{- end }}
spec: {{ $workload | toJson }}
{{- end -}}
