{{/*
Names. Every object is "<fullname>-<service>" (e.g. "shadowsync-task").
*/}}
{{- define "shadowsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shadowsync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The four services, in the order objects are rendered. */}}
{{- define "shadowsync.services" -}}
task approval analysis executor
{{- end }}

{{- define "shadowsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "shadowsync.labels" -}}
helm.sh/chart: {{ include "shadowsync.chart" . }}
app.kubernetes.io/name: {{ include "shadowsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shadowsync
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one service; call with (dict "root" $ "service" "task"). */}}
{{- define "shadowsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shadowsync.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end }}

{{- define "shadowsync.componentLabels" -}}
{{ include "shadowsync.labels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end }}

{{- define "shadowsync.serviceAccountName" -}}
{{- $values := index .root.Values .service }}
{{- if $values.serviceAccount.create }}
{{- default (printf "%s-%s" (include "shadowsync.fullname" .root) .service) $values.serviceAccount.name }}
{{- else }}
{{- default "default" $values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "shadowsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* http or https, by gRPC TLS. */}}
{{- define "shadowsync.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* A service's in-cluster gRPC URL; call with (dict "root" $ "service" "task"). */}}
{{- define "shadowsync.endpoint" -}}
{{- printf "%s://%s-%s.%s.svc:%v" (include "shadowsync.scheme" .root) (include "shadowsync.fullname" .root) .service .root.Release.Namespace .root.Values.ports.grpc }}
{{- end }}

{{/* Fails the render with a message naming the value to set. */}}
{{- define "shadowsync.required" -}}
{{- if not .value }}
{{- fail (printf "%s is required: %s" .name .why) }}
{{- end }}
{{- end }}

{{/* Which stores, queue and peers each service uses (DESIGN.md §2). */}}
{{- define "shadowsync.usesDatabase" -}}
{{- if has .service (list "task" "approval") }}true{{ end }}
{{- end }}
{{- define "shadowsync.usesQueue" -}}
{{- if has .service (list "task" "approval" "executor") }}true{{ end }}
{{- end }}
