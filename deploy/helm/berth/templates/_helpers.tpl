{{/* Chart name, truncated to the 63 characters labels allow. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "berth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The admin Service's name: FULLNAME-admin, within 63 characters. */}}
{{- define "berth.adminName" -}}
{{- include "berth.fullname" . | trunc 57 | trimSuffix "-" }}-admin
{{- end }}

{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- include "berth.commonLabels" . }}
{{- end }}

{{/*
The helm test pod's labels: the release's, with an app.kubernetes.io/name
of its own (NAME-test) and component "test", so no selector of the
service's (its Services, Deployment, PodDisruptionBudget, NetworkPolicy)
takes the test pod for one of its pods, and the NetworkPolicy admits no
other chart's test pod.
*/}}
{{- define "berth.testLabels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.testSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- include "berth.commonLabels" . }}
{{- end }}

{{/* The Pushgateway prune CronJob's labels: apart from the service's
selector, so its pods are never taken for the service's. */}}
{{- define "berth.pruneLabels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
app.kubernetes.io/name: {{ printf "%s-prune" (include "berth.name" . | trunc 57 | trimSuffix "-") | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: pushgateway-prune
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- include "berth.commonLabels" . }}
{{- end }}

{{/* The labels the NetworkPolicy admits the helm test pod by. */}}
{{- define "berth.testSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "berth.name" . | trunc 58 | trimSuffix "-") | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: test
{{- end }}

{{/* The user's commonLabels, on a line each (with a leading newline). */}}
{{- define "berth.commonLabels" -}}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Seconds of propagation delay in the app (0 in preStop mode). */}}
{{- define "berth.appDelay" -}}
{{- if eq .Values.drain.mode "app" }}{{ .Values.drain.delaySeconds }}{{ else }}0{{ end }}
{{- end }}

{{/* Seconds of preStop sleep (0 in app mode). */}}
{{- define "berth.preStopDelay" -}}
{{- if eq .Values.drain.mode "preStop" }}{{ .Values.drain.delaySeconds }}{{ else }}0{{ end }}
{{- end }}

{{- define "berth.classicSidecar" -}}
{{- if and .Values.sidecar.enabled (eq .Values.sidecar.mode "classic") }}true{{ end }}
{{- end }}

{{/*
The shutdown budget, the same sum the service checks against
BERTH_GRACE_PERIOD: delay (app or preStop) + drain timeout + stop timeout +
margin, + 1 after a preStop sleep (the second the app takes after SIGTERM to
close the keep-alive connections still in use), + the sidecar quit timeout when a classic sidecar is told to quit,
+ the push timeout when the final figures go to a Pushgateway.
*/}}
{{- define "berth.shutdownBudget" -}}
{{- $d := .Values.drain }}
{{- $b := add $d.delaySeconds $d.timeoutSeconds $d.stopTimeoutSeconds $d.marginSeconds }}
{{- if include "berth.hasPreStop" . }}{{ $b = add $b 1 }}{{ end }}
{{- if include "berth.classicSidecar" . }}{{ $b = add $b .Values.sidecar.quitTimeoutSeconds }}{{ end }}
{{- with include "berth.extraQuitSeconds" . }}{{ $b = add $b . }}{{ end }}
{{- if .Values.metrics.pushgateway.url }}{{ $b = add $b .Values.metrics.pushgateway.timeoutSeconds }}{{ end }}
{{- $b }}
{{- end }}

{{/* Pods that run at least: the autoscaler's floor, or replicaCount. */}}
{{- define "berth.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* The service's preStop sleep, rendered only when it sleeps. */}}
{{- define "berth.hasPreStop" -}}
{{- if and (eq .Values.drain.mode "preStop") (gt (int .Values.drain.delaySeconds) 0) }}true{{ end }}
{{- end }}

{{/* A duration value (Go's syntax without a sign: "1500ms", "10s", "1m30s", ".5s", "0") in milliseconds. */}}
{{- define "berth.ms" -}}
{{- $ms := 0.0 }}
{{- range $part := regexFindAll "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)" (toString .) -1 }}
{{- $n := regexFind "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)" $part }}
{{- $ms = addf $ms (mulf (float64 $n) (get (dict "ns" 0.000001 "us" 0.001 "µs" 0.001 "μs" 0.001 "ms" 1 "s" 1000 "m" 60000 "h" 3600000) (trimPrefix $n $part))) }}
{{- end }}
{{- $ms }}
{{- end }}

{{/*
Refusals the schema cannot express, each naming the values involved. Every
template that renders the service includes it.
*/}}
{{- define "berth.validate" -}}
{{- $v := .Values }}
{{- /* The Services take the full name, which must be a DNS-1035 label (lowercase letters, digits and "-", starting with a letter), where a release's name may start with a digit or hold a dot. */}}
{{- $full := include "berth.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $full) }}
{{- fail (printf "the objects' names would be %q (from %s), which Kubernetes refuses as a Service's name: want lowercase letters, digits and \"-\", starting with a letter (a DNS-1035 label); install under such a release name, or set fullnameOverride to one" $full (ternary "fullnameOverride" (printf "the release name %q" .Release.Name) (not (empty $v.fullnameOverride)))) }}
{{- end }}
{{- /* ...and written unquoted as names, a word YAML reads as a boolean or null would not be a string. */}}
{{- if has $full (list "y" "yes" "n" "no" "true" "false" "on" "off" "null") }}
{{- fail (printf "fullnameOverride=%q: YAML reads that word as a boolean or null, not a name; choose another" $full) }}
{{- end }}
{{- include "berth.dataUnderOtherNames" . }}
{{- /* The user's native sidecars: init containers with restartPolicy Always, which run beside the server for the pod's life, as its extra containers do. */}}
{{- $nativeSidecars := list }}
{{- range $c := $v.initContainers }}{{ if eq (toString $c.restartPolicy) "Always" }}{{ $nativeSidecars = append $nativeSidecars $c }}{{ end }}{{ end }}
{{- /* The service's own ranges (internal/config/bounds.go) for the values given as durations. */}}
{{- range $r := list (list "config.demoWarmup" $v.config.demoWarmup 1 600000 true "1ms" "10m") (list "config.jobInterval" $v.config.jobInterval 100 86400000 false "100ms" "24h") (list "database.timeout" $v.database.timeout 10 60000 false "10ms" "1m") }}
{{- $ms := float64 (include "berth.ms" (index $r 1)) }}
{{- if not (or (and (eq $ms 0.0) (index $r 4)) (and (ge $ms (float64 (index $r 2))) (le $ms (float64 (index $r 3))))) }}
{{- fail (printf "%s=%v: want between %s and %s%s" (index $r 0) (index $r 1) (index $r 5) (index $r 6) (ternary " (or 0)" "" (index $r 4))) }}
{{- end }}
{{- end }}
{{- if gt (int $v.config.workMaxSeconds) (int $v.drain.timeoutSeconds) }}
{{- fail (printf "config.workMaxSeconds (%d) is longer than drain.timeoutSeconds (%d): a request the service accepted could be cut off by its own drain; lower the one or raise the other" (int $v.config.workMaxSeconds) (int $v.drain.timeoutSeconds)) }}
{{- end }}
{{- $dbTimeout := divf (float64 (include "berth.ms" $v.database.timeout)) 1000.0 }}
{{- if lt (float64 $v.drain.timeoutSeconds) $dbTimeout }}
{{- fail (printf "drain.timeoutSeconds (%d) is shorter than database.timeout (%v): an items request waiting on the database could be cut off by the service's own drain; raise the one or lower the other" (int $v.drain.timeoutSeconds) $v.database.timeout) }}
{{- end }}
{{- $bundled := eq (include "berth.databaseMode" .) "bundled" }}
{{- $pods := int (include "berth.maxPods" .) }}
{{- $pool := int (include "berth.poolSize" .) }}
{{- if and $bundled (gt (mul $pods $pool) 90) }}
{{- fail (printf "up to %d pods at once (autoscaling.maxReplicas or replicaCount, plus rollingUpdate.maxSurge) x postgresql.poolSize %d = %d connections to the bundled PostgreSQL, past the 90 of its 100 it can give berth: lower postgresql.poolSize to %d, or use an external PostgreSQL (database.existingSecret)" $pods $pool (mul $pods $pool) (max 1 (div 90 $pods))) }}
{{- end }}
{{- $full := include "berth.fullname" . }}
{{- $derived := dict "the admin Service's" (include "berth.adminName" .) }}
{{- if $bundled }}
{{- $pg := include "berth.postgresql.fullname" . }}
{{- $_ := set $derived "the bundled PostgreSQL's" $pg }}
{{- $_ := set $derived "the bundled PostgreSQL's headless Service's" (printf "%s-headless" $pg) }}
{{- end }}
{{- range $what, $name := $derived }}
{{- if eq $name $full }}
{{- fail (printf "the full name %q, cut to fit Kubernetes' limits, makes %s name the same as the service's: choose a shorter fullnameOverride (or release name)" $full $what) }}
{{- end }}
{{- end }}
{{- if eq (int $v.ports.http) (int $v.ports.admin) }}
{{- fail (printf "ports.http and ports.admin are both %d: each server needs a port of its own" (int $v.ports.http)) }}
{{- end }}
{{- if $v.sidecar.enabled }}
{{- range $name, $port := dict "ports.http" $v.ports.http "ports.admin" $v.ports.admin }}
{{- if eq (int $v.sidecar.port) (int $port) }}
{{- fail (printf "sidecar.port=%d is also %s: the sidecar and the service share the pod's network, so each needs a port of its own" (int $v.sidecar.port) $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $key, $labels := dict "podLabels" $v.podLabels "commonLabels" $v.commonLabels }}
{{- range $label := list "app.kubernetes.io/name" "app.kubernetes.io/instance" }}
{{- if hasKey ($labels | default dict) $label }}
{{- fail (printf "%s sets %s, one of the selector's labels: the Deployment would lose its pods; choose another label" $key $label) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Labels the chart writes on every object (berth.labels), and on some (component). */}}
{{- $own := list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" }}
{{- $common := $v.commonLabels | default dict }}
{{- range $label := append $own "app.kubernetes.io/component" }}
{{- if hasKey $common $label }}
{{- fail (printf "commonLabels sets %s, which the chart sets itself: objects would carry the label twice; choose another label" $label) }}
{{- end }}
{{- end }}
{{- $extra := dict "podLabels" $v.podLabels "service.labels" $v.service.labels }}
{{- range $name := list "serviceMonitor" "prometheusRule" "dashboard" }}
{{- $obj := get $v.metrics $name }}
{{- if $obj.enabled }}{{ $_ := set $extra (printf "metrics.%s.labels" $name) $obj.labels }}{{ end }}
{{- end }}
{{- range $key := keys $extra | sortAlpha }}
{{- range $label, $_ := get $extra $key | default dict }}
{{- if has $label $own }}
{{- fail (printf "%s sets %s, which the chart sets itself: the object would carry the label twice; choose another label" $key $label) }}
{{- else if hasKey $common $label }}
{{- fail (printf "%s and commonLabels both set %s: the object would carry it twice; set it in one of them" $key $label) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* extraEnv: neither what the chart sets (the later entry would win over the chart's value, and its budget) nor what the service does not read (it would refuse to start). */}}
{{- $set := list }}
{{- range $m := regexFindAll "(?m)^- name: [A-Z0-9_]+" (include "berth.env" .) -1 }}{{ $set = append $set (trimPrefix "- name: " $m) }}{{ end }}
{{- $known := splitList " " (include "berth.variables" .) }}
{{- $managed := include "berth.envValues" $ | fromYaml }}
{{- range $e := $v.extraEnv }}
{{- if has $e.name $set }}
{{- $from := get $managed $e.name | default "the chart's values" }}
{{- fail (printf "extraEnv sets %s, which the chart already sets from %s; a second entry would override it past the chart's checks (the grace period's, say): remove it from extraEnv" $e.name $from) }}
{{- end }}
{{- /* A variable the chart sets from its values, though not with these:
through extraEnv it would escape the checks those values get (the grace
period, the drain mode). PGPASSWORD (for an external database's URL
without a password) and BERTH_SIDECARS (a sidecar the chart does not run,
such as Istio's) are the user's to set; so is the sidecar quit call when
terminationGracePeriodSeconds is set, whose timeout the budget checked
against it then counts (berth.extraQuitSeconds). */}}
{{- $quit := list "BERTH_SIDECAR_QUIT" "BERTH_SIDECAR_QUIT_TIMEOUT" }}
{{- $yours := list "PGPASSWORD" "BERTH_SIDECARS" }}
{{- if not (kindIs "invalid" $v.terminationGracePeriodSeconds) }}{{ $yours = concat $yours $quit }}{{ end }}
{{- if and (hasKey $managed $e.name) (not (has $e.name $set)) (not (has $e.name $yours)) }}
{{- $hint := ternary "; for a sidecar the chart does not run, set terminationGracePeriodSeconds to fit its quit timeout too" "" (has $e.name $quit) }}
{{- fail (printf "extraEnv sets %s, which the chart sets from %s (not with these values): set it there, where the chart's checks (the grace period's, the drain mode's) count it%s" $e.name (get $managed $e.name) $hint) }}
{{- end }}
{{- if eq $e.name "BERTH_SINGLE_LISTENER" }}
{{- fail "extraEnv sets BERTH_SINGLE_LISTENER, which would serve the probes on the API port while the chart's probes and Services use the admin port (ports.admin): remove it from extraEnv" }}
{{- end }}
{{- if and (hasPrefix "BERTH_" $e.name) (not (has $e.name $known)) }}
{{- fail (printf "extraEnv sets %s, which is not a berth variable: the service would refuse to start; the README lists them" $e.name) }}
{{- end }}
{{- end }}
{{- if and (eq $v.config.demoFail "sidecars") (not $v.sidecar.enabled) }}
{{- fail "config.demoFail=sidecars fails the sidecars hook, which runs only with sidecar.enabled=true: enable the sidecar or choose another hook" }}
{{- end }}
{{- /* The durations extraEnv may set that the chart counts (in the startup allowance, in the grace period), in the service's ranges (internal/config/bounds.go). */}}
{{- include "berth.extraDuration" (list $v "BERTH_SIDECAR_TIMEOUT" 100 3600000 "100ms and 1h") }}
{{- include "berth.extraDuration" (list $v "BERTH_SIDECAR_QUIT_TIMEOUT" 100 600000 "100ms and 10m") }}
{{- /* How long the service waits for a classic sidecar: BERTH_SIDECAR_TIMEOUT, 60s unless extraEnv sets it. */}}
{{- $sidecarTimeout := 60.0 }}
{{- range $e := $v.extraEnv }}
{{- if and (eq $e.name "BERTH_SIDECAR_TIMEOUT") (hasKey $e "value") }}
{{- $sidecarTimeout = divf (float64 (include "berth.ms" $e.value)) 1000.0 }}
{{- end }}
{{- end }}
{{- $delay := divf (float64 (include "berth.ms" $v.sidecar.readyDelay)) 1000.0 }}
{{- if and $v.sidecar.enabled (eq $v.sidecar.mode "native") (ge $delay 120.0) }}
{{- fail (printf "sidecar.readyDelay=%v: the native sidecar's startupProbe allows 120s, and the kubelet would restart it before it is ready; keep it under 120s" $v.sidecar.readyDelay) }}
{{- end }}
{{- if and (include "berth.classicSidecar" .) (ge $delay $sidecarTimeout) }}
{{- fail (printf "sidecar.readyDelay=%v: the service waits %vs for its sidecars (BERTH_SIDECAR_TIMEOUT) and would exit 1; keep it under that" $v.sidecar.readyDelay $sidecarTimeout) }}
{{- end }}
{{- /* The startup probe allows what the service may wait while starting: the database, the migrations, the cache's first load (its hook's bound, database.timeout + 5s, as the database's first answer), the warm-up and a classic sidecar (a native one is ready before the service starts). */}}
{{- /* The kubelet's first probe can come as the container starts, so the last failure it allows comes periodSeconds x (failureThreshold - 1) later. */}}
{{- $allowed := mul (int $v.probes.startup.periodSeconds) (sub (int $v.probes.startup.failureThreshold) 1) }}
{{- $warmup := int (ceil (divf (float64 (include "berth.ms" $v.config.demoWarmup)) 1000.0)) }}
{{- /* ...or one extraEnv lists (BERTH_SIDECARS: Istio's, say), which the service waits for before its other hooks. */}}
{{- $waitsForSidecars := eq (include "berth.classicSidecar" .) "true" }}
{{- range $v.extraEnv }}{{ if and (eq .name "BERTH_SIDECARS") (or .value .valueFrom) }}{{ $waitsForSidecars = true }}{{ end }}{{ end }}
{{- $sidecarWait := ternary (int (ceil $sidecarTimeout)) 0 $waitsForSidecars }}
{{- $migrate := int (include "berth.migrateTimeoutSeconds" .) }}
{{- $open := add (int (ceil $dbTimeout)) 5 }}
{{- $need := add (int $v.database.waitSeconds) $open $migrate $warmup $sidecarWait $open }}
{{- if lt $allowed $need }}
{{- fail (printf "probes.startup allows %ds (periodSeconds %d x (failureThreshold %d - 1), as the first probe can come as the container starts), less than the service may take to start: database.waitSeconds %d + %ds for the database's first answer (database.timeout + 5s) + database.migrateTimeoutSeconds %d + config.demoWarmup %ds + sidecar wait %ds + %ds for the cache's first load (database.timeout + 5s) = %ds; the kubelet would restart it first. Raise probes.startup.failureThreshold to at least %d" $allowed (int $v.probes.startup.periodSeconds) (int $v.probes.startup.failureThreshold) (int $v.database.waitSeconds) $open $migrate $warmup $sidecarWait $open $need (add1 (int (ceil (divf (float64 $need) (float64 $v.probes.startup.periodSeconds)))))) }}
{{- end }}
{{- $ru := $v.rollingUpdate }}
{{- if and (eq (toString $ru.maxSurge | trimSuffix "%") "0") (eq (toString $ru.maxUnavailable | trimSuffix "%") "0") }}
{{- fail "rollingUpdate.maxSurge and rollingUpdate.maxUnavailable are both 0: the rollout could never replace a pod; raise one of them" }}
{{- end }}
{{- $min := int (include "berth.minReplicas" .) }}
{{- /* An autoscaler from one pod renders the budget too, and scales to two or more: a budget must hold there. */}}
{{- $scaledUp := and $v.autoscaling.enabled (lt $min 2) (ge (int $v.autoscaling.maxReplicas) 2) }}
{{- if $scaledUp }}{{ $min = 2 }}{{ end }}
{{- if and $v.podDisruptionBudget.enabled (or $v.autoscaling.enabled (gt (int $v.replicaCount) 1)) }}{{/* as pdb.yaml renders it */}}
{{- $mu := toString $v.podDisruptionBudget.maxUnavailable }}
{{- /* Kubernetes rounds a percentage up: ceil(p*n/100) pods may go. */}}
{{- $pct := hasSuffix "%" $mu }}
{{- $n := atoi (trimSuffix "%" $mu) }}
{{- if eq $n 0 }}
{{- fail (printf "podDisruptionBudget.maxUnavailable=%s lets no pod be evicted: every node drain and upgrade would wait on it for good; keep it at 1 or more, or disable the budget (podDisruptionBudget.enabled=false)" $mu) }}
{{- end }}
{{- if and (gt $min 1) (or (and $pct (gt (mul $n $min) (mul 100 (sub $min 1)))) (and (not $pct) (ge $n $min))) }}
{{- fail (printf "podDisruptionBudget.maxUnavailable=%s lets all %d pods be evicted at once%s; keep it below %d, or a percentage of at most %d%%" $mu $min (ternary " (the autoscaler's, once it scales up from autoscaling.minReplicas=1)" "" $scaledUp) $min (div (mul 100 (sub $min 1)) $min)) }}
{{- end }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- if eq (include "berth.databaseMode" .) "embedded" }}
{{- fail "the embedded SQLite database serves one replica only: autoscaling.enabled would start more; use PostgreSQL (bundled or external) to autoscale" }}
{{- end }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas=%d is above autoscaling.maxReplicas=%d" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- /* The HPA reads utilisation against each container's request (a limit alone defaults it): without one, it never scales. */}}
{{- $targeted := list "cpu" }}
{{- if $v.autoscaling.targetMemoryUtilizationPercentage }}{{ $targeted = append $targeted "memory" }}{{ end }}
{{- $requests := list (list "resources" $v.resources) }}
{{- if $v.sidecar.enabled }}{{ $requests = append $requests (list "sidecar.resources" $v.sidecar.resources) }}{{ end }}
{{- range $c := $v.extraContainers }}{{ $requests = append $requests (list (printf "extraContainers %q's resources" $c.name) $c.resources) }}{{ end }}
{{- /* The autoscaler sums a native sidecar's request too. */}}
{{- range $c := $nativeSidecars }}{{ $requests = append $requests (list (printf "initContainers %q's resources (a native sidecar: restartPolicy Always)" $c.name) $c.resources) }}{{ end }}
{{- range $r := $requests }}
{{- range $resource := $targeted }}
{{- $res := index $r 1 | default dict }}
{{- if not (or (dig "requests" $resource "" $res) (dig "limits" $resource "" $res)) }}
{{- fail (printf "autoscaling.enabled: %s request no %s, and the autoscaler, which reads %s utilisation against every container's request, would never scale; set %s.requests.%s (a namespace LimitRange's default request does not show in the chart's values: set it here too)" (index $r 0) $resource $resource (index $r 0) $resource) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* What the chart names in its pods, which the extra containers, volumes and mounts must not name again: the API server refuses a pod with two of one. */}}
{{- $embedded := eq (include "berth.databaseMode" .) "embedded" }}
{{- $containers := list "server" }}
{{- if $v.sidecar.enabled }}{{ $containers = append $containers "sidecar" }}{{ end }}
{{- range $key := list "extraContainers" "initContainers" }}
{{- range $c := get $v $key }}
{{- if has $c.name $containers }}
{{- fail (printf "%s has a container named %q, which the pod already has (the chart names its own server, and sidecar with sidecar.enabled): container names must be unique in a pod; choose another" $key $c.name) }}
{{- end }}
{{- $containers = append $containers $c.name }}
{{- end }}
{{- end }}
{{- $volumes := ternary (list "data") (list) $embedded }}
{{- range $vol := $v.extraVolumes }}
{{- if has $vol.name $volumes }}
{{- fail (printf "extraVolumes has a volume named %q, which the pod already has (the embedded database's volume is data): volume names must be unique in a pod; choose another" $vol.name) }}
{{- end }}
{{- $volumes = append $volumes $vol.name }}
{{- end }}
{{- $paths := ternary (list "/data") (list) $embedded }}
{{- range $m := $v.extraVolumeMounts }}
{{- $path := trimSuffix "/" $m.mountPath }}
{{- if has $path $paths }}
{{- fail (printf "extraVolumeMounts mounts %s, where the service container already mounts a volume (the embedded database's is at /data): mount paths must be unique in a container; choose another" $m.mountPath) }}
{{- end }}
{{- $paths = append $paths $path }}
{{- end }}
{{- /* The pod's containers share one network: a port the user's running containers (extra ones, native sidecars) declare must not be one the pod already listens on, or one of the two fails to bind and the pod crash-loops (the API server only warns). */}}
{{- $listening := dict (printf "%d/TCP" (int $v.ports.http)) "ports.http" (printf "%d/TCP" (int $v.ports.admin)) "ports.admin" }}
{{- if $v.sidecar.enabled }}{{ $_ := set $listening (printf "%d/TCP" (int $v.sidecar.port)) "sidecar.port" }}{{ end }}
{{- $running := list }}
{{- range $c := $v.extraContainers }}{{ $running = append $running (list "extraContainers" $c) }}{{ end }}
{{- range $c := $nativeSidecars }}{{ $running = append $running (list "initContainers" $c) }}{{ end }}
{{- range $kc := $running }}
{{- $c := index $kc 1 }}
{{- range $p := $c.ports }}
{{- $proto := default "TCP" $p.protocol }}
{{- $key := printf "%d/%s" (int $p.containerPort) $proto }}
{{- with get $listening $key }}
{{- fail (printf "%s %q declares port %d/%s, which %s already listens on: the pod's containers share its network, and one of the two would fail to bind; choose another port" (index $kc 0) $c.name (int $p.containerPort) $proto .) }}
{{- end }}
{{- $_ := set $listening $key (printf "%s %q" (index $kc 0) $c.name) }}
{{- end }}
{{- end }}
{{- /* The pods' NetworkPolicy admits the chart's two ports and the rules of networkPolicy.extraIngress: a port that a container of the user's declares (an extra one, or a native sidecar: an init container with restartPolicy Always) and none of those admits would be cut off. */}}
{{- if $v.networkPolicy.enabled }}
{{- $serving := list }}
{{- range $c := $v.extraContainers }}{{ $serving = append $serving (list "extraContainers" $c) }}{{ end }}
{{- range $c := $nativeSidecars }}{{ $serving = append $serving (list "initContainers" $c) }}{{ end }}
{{- range $kc := $serving }}
{{- $key := index $kc 0 }}
{{- $c := index $kc 1 }}
{{- range $p := $c.ports }}
{{- $admitted := false }}
{{- range $rule := $v.networkPolicy.extraIngress }}
{{- if not $rule.ports }}{{ $admitted = true }}{{ end }}
{{- range $rp := $rule.ports }}
{{- $sameProtocol := eq (default "TCP" $rp.protocol) (default "TCP" $p.protocol) }}
{{- $port := toString $rp.port }}
{{- $byName := and $p.name (eq $port $p.name) }}
{{- $byNumber := eq $port (toString $p.containerPort) }}
{{- $inRange := and $rp.endPort (regexMatch "^[0-9]+$" $port) (ge (int $p.containerPort) (int $rp.port)) (le (int $p.containerPort) (int $rp.endPort)) }}
{{- if and $sameProtocol (or (not $rp.port) $byName $byNumber $inRange) }}{{ $admitted = true }}{{ end }}
{{- end }}
{{- end }}
{{- if not $admitted }}
{{- fail (printf "networkPolicy.enabled admits nothing to %s %q's port %v%s: add a rule that does to networkPolicy.extraIngress, such as {ports: [{port: %v}], from: [...]}; or, for a port only the pod's own containers reach (a proxy on 127.0.0.1, which NetworkPolicy does not govern), drop its ports entry" $key $c.name $p.containerPort (ternary (printf " (%s)" $p.name) "" (not (empty $p.name))) $p.containerPort) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Refuses an upgrade or reinstall that names the release's objects anew
(a changed nameOverride or fullnameOverride) while a claim made under the
old names holds the release's items: the new names make a new, empty claim
beside it, and the refusals of a switch between databases, which look the
claim up by its current name, would not see the old one. An embedded
database's claim holds the items in every mode; a bundled PostgreSQL's is
left for an external database, as it is when the names stay. */}}
{{- define "berth.dataUnderOtherNames" -}}
{{- $mode := include "berth.databaseMode" . }}
{{- $claims := dict "embedded" (printf "%s-data" (include "berth.fullname" .)) "bundled" (printf "data-%s-0" (include "berth.postgresql.fullname" .)) }}
{{- range $pvc := (lookup "v1" "PersistentVolumeClaim" .Release.Namespace "").items | default list }}
{{- $labels := $pvc.metadata.labels | default dict }}
{{- $name := $pvc.metadata.name }}
{{- if eq (get $labels "app.kubernetes.io/instance") $.Release.Name }}
{{- $kind := "" }}
{{- if and (hasPrefix "berth-" (get $labels "helm.sh/chart")) (hasSuffix "-data" $name) }}{{ $kind = "embedded" }}{{ end }}
{{- if and (hasSuffix "-postgresql" (get $labels "app.kubernetes.io/name")) (regexMatch "^data-.+-0$" $name) (ne $mode "external") }}{{ $kind = "bundled" }}{{ end }}
{{- if and $kind (ne $name (get $claims $kind)) }}
{{- fail (printf "the claim %s/%s holds this release's %s, but these values name the release's objects differently (nameOverride or fullnameOverride changed), so its claim would now be %s: the service would start on an empty database and the items would be left behind. Set nameOverride and fullnameOverride back to what made %s, or move the items and then delete the claim (kubectl -n %s delete pvc %s)" $.Release.Namespace $name (ternary "embedded SQLite database" "bundled PostgreSQL data" (eq $kind "embedded")) (get $claims $kind) $name $.Release.Namespace $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Refuses the value extraEnv gives a duration variable the chart counts
unless it is a duration with a unit within the service's range: here, where
the message can name extraEnv, rather than by a pod that exits 2. Its
argument: (list .Values NAME MIN_MS MAX_MS "MIN and MAX"). */}}
{{- define "berth.extraDuration" -}}
{{- $name := index . 1 }}
{{- range $e := (index . 0).extraEnv }}
{{- if and (eq $e.name $name) (hasKey $e "value") }}
{{- if not (regexMatch "^(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$" (toString $e.value)) }}
{{- fail (printf "extraEnv sets %s=%q, which is not a duration with a unit such as 90s or 2m: the service would refuse to start" $name (toString $e.value)) }}
{{- end }}
{{- $ms := float64 (include "berth.ms" $e.value) }}
{{- if or (lt $ms (float64 (index $ 2))) (gt $ms (float64 (index $ 3))) }}
{{- fail (printf "extraEnv sets %s=%q: want between %s, the service's range" $name (toString $e.value) (index $ 4)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The budget's terms, in words, for messages: "drain delay 5 + ... ". */}}
{{/* The timeout, in whole seconds, of a sidecar quit call extraEnv sets
(BERTH_SIDECAR_QUIT, for a sidecar the chart does not run), which the service
counts in its budget: BERTH_SIDECAR_QUIT_TIMEOUT, 5s unless extraEnv sets
it (as a value: one from a ConfigMap or Secret, which the chart cannot read,
counts as 5s); empty without such a call, given as a value or from one. */}}
{{- define "berth.extraQuitSeconds" -}}
{{- $quit := false }}
{{- $ms := 5000 }}
{{- range .Values.extraEnv }}
{{- if and (eq .name "BERTH_SIDECAR_QUIT") (or .value .valueFrom) }}{{ $quit = true }}{{ end }}
{{- if and (eq .name "BERTH_SIDECAR_QUIT_TIMEOUT") .value }}{{ $ms = int (include "berth.ms" .value) }}{{ end }}
{{- end }}
{{- if $quit }}{{ int (ceil (divf (float64 $ms) 1000.0)) }}{{ end }}
{{- end }}

{{- define "berth.budgetTerms" -}}
{{- $d := .Values.drain }}
{{- $terms := list (printf "%s %v" (ternary "preStop sleep" "drain delay" (eq $d.mode "preStop")) $d.delaySeconds) }}
{{- if include "berth.hasPreStop" . }}{{ $terms = append $terms "1 to close keep-alive connections after the preStop sleep" }}{{ end }}
{{- $terms = append $terms (printf "drain timeout %v" $d.timeoutSeconds) }}
{{- $terms = append $terms (printf "stop timeout %v" $d.stopTimeoutSeconds) }}
{{- if include "berth.classicSidecar" . }}{{ $terms = append $terms (printf "sidecar quit timeout %v" .Values.sidecar.quitTimeoutSeconds) }}{{ end }}
{{- with include "berth.extraQuitSeconds" . }}{{ $terms = append $terms (printf "sidecar quit timeout %v (extraEnv's BERTH_SIDECAR_QUIT)" .) }}{{ end }}
{{- if .Values.metrics.pushgateway.url }}{{ $terms = append $terms (printf "push timeout %v" .Values.metrics.pushgateway.timeoutSeconds) }}{{ end }}
{{- $terms = append $terms (printf "margin %v" $d.marginSeconds) }}
{{- join " + " $terms }}
{{- end }}

{{- define "berth.gracePeriod" -}}
{{- if .Values.terminationGracePeriodSeconds }}{{ .Values.terminationGracePeriodSeconds }}{{ else }}{{ include "berth.shutdownBudget" . }}{{ end }}
{{- end }}

{{/* The service pod's securityContext: podSecurityContext, and, when a
port the pod listens on is below 1024, the safe sysctl that lets a process
without capabilities bind it (runtimes differ on its default: containerd
1.x keeps 1024), unless podSecurityContext sets that sysctl itself. */}}
{{- define "berth.podSecurityContext" -}}
{{- $psc := deepCopy .Values.podSecurityContext }}
{{- $ports := list (int .Values.ports.http) (int .Values.ports.admin) }}
{{- if .Values.sidecar.enabled }}{{ $ports = append $ports (int .Values.sidecar.port) }}{{ end }}
{{- $lowest := 65536 }}
{{- range $ports }}{{ if lt . (int $lowest) }}{{ $lowest = . }}{{ end }}{{ end }}
{{- $sysctls := get $psc "sysctls" | default list }}
{{- $set := false }}
{{- range $sysctls }}{{ if eq (get . "name") "net.ipv4.ip_unprivileged_port_start" }}{{ $set = true }}{{ end }}{{ end }}
{{- if and (lt (int $lowest) 1024) (not $set) }}
{{- $_ := set $psc "sysctls" (append $sysctls (dict "name" "net.ipv4.ip_unprivileged_port_start" "value" (toString $lowest))) }}
{{- end }}
{{- toYaml $psc }}
{{- end }}

{{/* The service's container securityContext (restricted by default). */}}
{{- define "berth.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* The sidecar container, in either shape. */}}
{{- define "berth.sidecarContainer" -}}
- name: sidecar
  image: {{ include "berth.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["sidecar"]
  {{- if eq .Values.sidecar.mode "native" }}
  restartPolicy: Always
  {{- end }}
  env:
    # Logs in the service's format, so one parser reads the pod's logs.
    - name: BERTH_LOG_FORMAT
      value: {{ .Values.config.logFormat | quote }}
    - name: BERTH_SIDECAR_ADDR
      value: "127.0.0.1:{{ .Values.sidecar.port }}"
    - name: BERTH_SIDECAR_READY_DELAY
      value: {{ .Values.sidecar.readyDelay | quote }}
    - name: BERTH_SIDECAR_HOLD
      {{- if eq .Values.sidecar.mode "classic" }}
      # Like a mesh proxy: keep the network up after SIGTERM until the app says quit.
      value: "{{ include "berth.gracePeriod" . }}s"
      {{- else }}
      value: "0s"
      {{- end }}
  {{- if eq .Values.sidecar.mode "native" }}
  # The kubelet starts the app only once this probe passes.
  startupProbe:
    exec:
      command: ["/server", "probe", "http://127.0.0.1:{{ .Values.sidecar.port }}/ready"]
    periodSeconds: 1
    # 120s: its first probe can come as it starts, and the 121st failure
    # 120 periods later.
    failureThreshold: 121
  {{- end }}
  securityContext:
    {{- include "berth.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
{{- end }}

{{/* The database setup: "bundled", "external" or "embedded". */}}
{{/* database.migrateTimeoutSeconds, 60 when absent: values kept from an
older chart (helm upgrade --reuse-values) lack it. */}}
{{- define "berth.migrateTimeoutSeconds" -}}
{{- .Values.database.migrateTimeoutSeconds | default 60 | int64 }}
{{- end }}

{{- define "berth.databaseMode" -}}
{{- if .Values.postgresql.enabled }}bundled{{ else if .Values.database.existingSecret }}external{{ else }}embedded{{ end }}
{{- end }}

{{/* The bundled PostgreSQL's name: FULLNAME-postgresql, with the full
name cut to 41 characters so the name stays within the 52 a StatefulSet's
pods need (their controller-revision-hash label is the name, a dash and up
to 10 more characters, at most 63), and stays apart from the full name. */}}
{{- define "berth.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "berth.fullname" . | trunc 41 | trimSuffix "-") }}
{{- end }}

{{- define "berth.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-postgresql" (include "berth.name" . | trunc 52 | trimSuffix "-") | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "berth.postgresql.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.postgresql.selectorLabels" . }}
app.kubernetes.io/component: database
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- include "berth.commonLabels" . }}
{{- end }}

{{/* Connections each pod keeps open to the bundled PostgreSQL
(postgresql.poolSize, 8 when absent: values kept from an older chart lack
it). A value of its own, not one derived from the replica count, so
scaling does not roll every pod. */}}
{{- define "berth.poolSize" -}}
{{- .Values.postgresql.poolSize | default 8 | int }}
{{- end }}

{{/* The most of the service's pods that can run at once: the autoscaler's
maximum or replicaCount, plus the rollout's surge. */}}
{{- define "berth.maxPods" -}}
{{- $pods := int .Values.replicaCount }}
{{- if .Values.autoscaling.enabled }}{{ $pods = int .Values.autoscaling.maxReplicas }}{{ end }}
{{- $surge := toString .Values.rollingUpdate.maxSurge }}
{{- if hasSuffix "%" $surge }}
{{- $pods = add $pods (int (ceil (divf (mulf $pods (float64 (trimSuffix "%" $surge))) 100.0))) }}
{{- else }}
{{- $pods = add $pods (int $surge) }}
{{- end }}
{{- $pods }}
{{- end }}

{{/* The Secret holding the bundled PostgreSQL's password: the user's, or
the one the chart generates. */}}
{{- define "berth.postgresql.secretName" -}}
{{- .Values.postgresql.existingSecret | default (include "berth.postgresql.fullname" .) }}
{{- end }}

{{/* The database's environment for the service container. */}}
{{- define "berth.databaseEnv" -}}
{{- $mode := include "berth.databaseMode" . }}
{{- if eq $mode "bundled" }}
{{- /* The password stays out of the URL, where any character URLs reserve
(@ : / % ? #) would break it: pgx reads PGPASSWORD when the URL has none. */}}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "berth.postgresql.secretName" . }}
      key: password
- name: BERTH_DATABASE_URL
  value: "postgres://{{ .Values.postgresql.username }}@{{ include "berth.postgresql.fullname" . }}:5432/{{ .Values.postgresql.database }}?sslmode=disable&pool_max_conns={{ include "berth.poolSize" . }}"
{{- else if eq $mode "external" }}
- name: BERTH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.existingSecretKey }}
{{- else }}
- name: BERTH_DATA_DIR
  value: /data
{{- end }}
- name: BERTH_DB_WAIT
  value: "{{ .Values.database.waitSeconds }}s"
- name: BERTH_MIGRATE_TIMEOUT
  value: "{{ include "berth.migrateTimeoutSeconds" . }}s"
- name: BERTH_DB_TIMEOUT
  value: {{ .Values.database.timeout | quote }}
- name: BERTH_MAX_ITEMS
  value: "{{ .Values.database.maxItems | int64 }}"
{{- end }}

{{/* PostgreSQL's container securityContext: restricted, as uid 999. */}}
{{- define "berth.postgresql.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The service container's environment, from the chart's values (extraEnv
comes after it, and may not set any of these names: see berth.validate).
*/}}
{{- define "berth.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: BERTH_HTTP_ADDR
  value: ":{{ .Values.ports.http }}"
- name: BERTH_ADMIN_ADDR
  value: ":{{ .Values.ports.admin }}"
- name: BERTH_DRAIN_DELAY
  value: "{{ include "berth.appDelay" . }}s"
{{- if and (eq .Values.drain.mode "app") .Values.drain.quietSeconds }}
- name: BERTH_DRAIN_QUIET
  value: "{{ .Values.drain.quietSeconds }}s"
{{- end }}
- name: BERTH_PRESTOP_DELAY
  value: "{{ include "berth.preStopDelay" . }}s"
- name: BERTH_DRAIN_TIMEOUT
  value: "{{ .Values.drain.timeoutSeconds }}s"
- name: BERTH_STOP_TIMEOUT
  value: "{{ .Values.drain.stopTimeoutSeconds }}s"
- name: BERTH_SHUTDOWN_MARGIN
  value: "{{ .Values.drain.marginSeconds }}s"
- name: BERTH_GRACE_PERIOD
  value: "{{ include "berth.gracePeriod" . }}s"
- name: BERTH_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: BERTH_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: BERTH_DEMO_WARMUP
  value: {{ .Values.config.demoWarmup | quote }}
- name: BERTH_DEMO_FAIL
  value: {{ .Values.config.demoFail | quote }}
- name: BERTH_JOB_INTERVAL
  value: {{ .Values.config.jobInterval | quote }}
- name: BERTH_WORK_MAX
  value: "{{ .Values.config.workMaxSeconds }}s"
{{- include "berth.databaseEnv" . | nindent 0 }}
{{- with .Values.metrics.pushgateway.url }}
- name: BERTH_PUSHGATEWAY_URL
  value: {{ . | quote }}
- name: BERTH_PUSH_TIMEOUT
  value: "{{ $.Values.metrics.pushgateway.timeoutSeconds }}s"
{{- end }}
{{- if .Values.sidecar.enabled }}
- name: BERTH_SIDECARS
  value: "http://127.0.0.1:{{ .Values.sidecar.port }}/ready"
{{- end }}
{{- if include "berth.classicSidecar" . }}
- name: BERTH_SIDECAR_QUIT
  value: "http://127.0.0.1:{{ .Values.sidecar.port }}/quitquitquit"
- name: BERTH_SIDECAR_QUIT_TIMEOUT
  value: "{{ .Values.sidecar.quitTimeoutSeconds }}s"
{{- end }}
{{- end }}

{{/*
Every variable the service reads (internal/config's Variables; a chart test
keeps the two lists equal): extraEnv may set only these, beyond what the
chart sets, or the service would refuse to start.
*/}}
{{- define "berth.variables" -}}
BERTH_ADMIN_ADDR BERTH_BODY_LIMIT BERTH_DATABASE_URL BERTH_DATA_DIR BERTH_DB_TIMEOUT BERTH_DB_WAIT BERTH_DEMO_FAIL BERTH_DEMO_WARMUP BERTH_DRAIN_DELAY BERTH_DRAIN_QUIET BERTH_DRAIN_TIMEOUT BERTH_GRACE_PERIOD BERTH_HTTP_ADDR BERTH_JOB_INTERVAL BERTH_LOG_FORMAT BERTH_LOG_LEVEL BERTH_MAX_ITEMS BERTH_MIGRATE_TIMEOUT BERTH_PRESTOP_DELAY BERTH_PUSHGATEWAY_URL BERTH_PUSH_TIMEOUT BERTH_SHUTDOWN_MARGIN BERTH_SIDECARS BERTH_SIDECAR_ADDR BERTH_SIDECAR_HOLD BERTH_SIDECAR_QUIT BERTH_SIDECAR_QUIT_AFTER_FAILED_START BERTH_SIDECAR_QUIT_TIMEOUT BERTH_SIDECAR_READY_DELAY BERTH_SIDECAR_TIMEOUT BERTH_SINGLE_LISTENER BERTH_STOP_TIMEOUT BERTH_WORK_MAX
{{- end }}

{{/* Which values set each variable of berth.env, for messages. */}}
{{- define "berth.envValues" -}}
POD_NAME: the downward API (metadata.name)
POD_NAMESPACE: the downward API (metadata.namespace)
BERTH_HTTP_ADDR: ports.http
BERTH_ADMIN_ADDR: ports.admin
BERTH_DRAIN_DELAY: drain.mode and drain.delaySeconds
BERTH_DRAIN_QUIET: drain.quietSeconds
BERTH_PRESTOP_DELAY: drain.mode and drain.delaySeconds
BERTH_DRAIN_TIMEOUT: drain.timeoutSeconds
BERTH_STOP_TIMEOUT: drain.stopTimeoutSeconds
BERTH_SHUTDOWN_MARGIN: drain.marginSeconds
BERTH_GRACE_PERIOD: terminationGracePeriodSeconds (or the drain values)
BERTH_LOG_LEVEL: config.logLevel
BERTH_LOG_FORMAT: config.logFormat
BERTH_DEMO_WARMUP: config.demoWarmup
BERTH_DEMO_FAIL: config.demoFail
BERTH_JOB_INTERVAL: config.jobInterval
BERTH_WORK_MAX: config.workMaxSeconds
PGPASSWORD: the bundled PostgreSQL's Secret (postgresql.existingSecret or the generated one)
BERTH_DATABASE_URL: postgresql.* or database.existingSecret
BERTH_DATA_DIR: the embedded database's volume (database.embedded.*)
BERTH_DB_WAIT: database.waitSeconds
BERTH_MIGRATE_TIMEOUT: database.migrateTimeoutSeconds
BERTH_DB_TIMEOUT: database.timeout
BERTH_MAX_ITEMS: database.maxItems
BERTH_PUSHGATEWAY_URL: metrics.pushgateway.url
BERTH_PUSH_TIMEOUT: metrics.pushgateway.timeoutSeconds
BERTH_SIDECARS: sidecar.enabled
BERTH_SIDECAR_QUIT: sidecar.mode
BERTH_SIDECAR_QUIT_TIMEOUT: sidecar.quitTimeoutSeconds
{{- end }}
