{{/* The chart name, shortened to the 63 characters a label value may hold. */}}
{{- define "streamspace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object name: <release>-streamspace, or the release name when it already says so. */}}
{{- define "streamspace.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Object names of the three components; suffixes keep them under 63 characters with any release name. */}}
{{- define "streamspace.controlPlane.fullname" -}}
{{- printf "%s-control-plane" (include "streamspace.fullname" . | trunc 49 | trimSuffix "-") -}}
{{- end -}}
{{- define "streamspace.agent.fullname" -}}
{{- printf "%s-agent" (include "streamspace.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}
{{- define "streamspace.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "streamspace.fullname" . | trunc 52 | trimSuffix "-") -}}
{{- end -}}

{{/* The keys Secret: the operator's own, or the one the chart generates. */}}
{{- define "streamspace.keysSecretName" -}}
{{- default (printf "%s-keys" (include "streamspace.fullname" . | trunc 58 | trimSuffix "-")) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Selects one component's pods: stable across upgrades (selectors are immutable). */}}
{{- define "streamspace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamspace.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object of one component. */}}
{{- define "streamspace.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "streamspace.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: streamspace
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "streamspace.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The control plane's in-cluster URL, which the agent dials. */}}
{{- define "streamspace.controlPlane.url" -}}
{{- printf "http://%s.%s.svc:%d" (include "streamspace.controlPlane.fullname" .) .Release.Namespace (int .Values.controlPlane.apiPort) -}}
{{- end -}}

{{/* Several control-plane replicas share one PostgreSQL database and nothing else (ADR 0030): refuses values
  that would leave them without one. The database Secret's content cannot be seen here; a plain URL can. */}}
{{- define "streamspace.controlPlane.checkReplicas" -}}
{{- $replicas := int .Values.controlPlane.replicas -}}
{{- if gt $replicas 1 -}}
{{- $database := .Values.externalDatabase -}}
{{- if not (or .Values.postgresql.enabled $database.url $database.existingSecret) -}}
{{- fail (printf "controlPlane.replicas is %d: the replicas share one PostgreSQL database; set postgresql.enabled, externalDatabase.url or externalDatabase.existingSecret" $replicas) -}}
{{- end -}}
{{- range .Values.controlPlane.extraEnv -}}
{{- if and (eq .name "STREAMSPACE_DATABASE_URL") (hasKey . "value") (not (regexMatch "^postgres(ql)?://" .value)) -}}
{{- fail (printf "controlPlane.replicas is %d: the replicas share one PostgreSQL database, but controlPlane.extraEnv sets STREAMSPACE_DATABASE_URL to another kind of database" $replicas) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Replicas of one component preferably on different nodes: a node's death then takes one of them at most. */}}
{{- define "streamspace.spreadAcrossNodes" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "streamspace.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/* The pod and container security of the `restricted` Pod Security Standard, from values. */}}
{{- define "streamspace.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end -}}
{{- define "streamspace.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end -}}

{{/* A Secret's value (base64): the one already in the cluster (kept across upgrades), else `fresh`. */}}
{{- define "streamspace.kept" -}}
{{- index .data .key | default .fresh -}}
{{- end -}}
