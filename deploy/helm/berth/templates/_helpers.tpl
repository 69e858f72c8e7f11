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

{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
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
margin, + 1 in preStop mode (the second the app takes after SIGTERM to
close the keep-alive connections still in use), + the sidecar quit timeout when a classic sidecar is told to quit,
+ the push timeout when the final figures go to a Pushgateway.
*/}}
{{- define "berth.shutdownBudget" -}}
{{- $d := .Values.drain }}
{{- $b := add $d.delaySeconds $d.timeoutSeconds $d.stopTimeoutSeconds $d.marginSeconds }}
{{- if eq $d.mode "preStop" }}{{ $b = add $b 1 }}{{ end }}
{{- if include "berth.classicSidecar" . }}{{ $b = add $b .Values.sidecar.quitTimeoutSeconds }}{{ end }}
{{- if .Values.metrics.pushgateway.url }}{{ $b = add $b .Values.metrics.pushgateway.timeoutSeconds }}{{ end }}
{{- $b }}
{{- end }}

{{- define "berth.gracePeriod" -}}
{{- if .Values.terminationGracePeriodSeconds }}{{ .Values.terminationGracePeriodSeconds }}{{ else }}{{ include "berth.shutdownBudget" . }}{{ end }}
{{- end }}

{{/* Pod Security "restricted" container securityContext. */}}
{{- define "berth.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
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
    failureThreshold: 120
  {{- end }}
  securityContext:
    {{- include "berth.containerSecurityContext" . | nindent 4 }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
{{- end }}

{{/* The database setup: "bundled", "external" or "embedded". */}}
{{- define "berth.databaseMode" -}}
{{- if .Values.postgresql.enabled }}bundled{{ else if .Values.database.existingSecret }}external{{ else }}embedded{{ end }}
{{- end }}

{{- define "berth.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "berth.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}-postgresql
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth.postgresql.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.postgresql.selectorLabels" . }}
app.kubernetes.io/component: database
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The database's environment for the service container. */}}
{{- define "berth.databaseEnv" -}}
{{- $mode := include "berth.databaseMode" . }}
{{- if eq $mode "bundled" }}
- name: BERTH_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "berth.postgresql.fullname" . }}
      key: password
- name: BERTH_DATABASE_URL
  value: "postgres://{{ .Values.postgresql.username }}:$(BERTH_DB_PASSWORD)@{{ include "berth.postgresql.fullname" . }}:5432/{{ .Values.postgresql.database }}?sslmode=disable"
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
- name: BERTH_DB_TIMEOUT
  value: {{ .Values.database.timeout | quote }}
- name: BERTH_MAX_ITEMS
  value: "{{ .Values.database.maxItems }}"
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
