{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "alembic-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: fullnameOverride, else "<release>-<chart>" unless the release already contains it. */}}
{{- define "alembic-operator.fullname" -}}
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

{{- define "alembic-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every resource carries. */}}
{{- define "alembic-operator.labels" -}}
helm.sh/chart: {{ include "alembic-operator.chart" . }}
{{ include "alembic-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alembic-operator
{{- end }}

{{/* Labels that select the operator pod. */}}
{{- define "alembic-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alembic-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "alembic-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alembic-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "alembic-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches (a list), or an empty list when it watches them all. */}}
{{- define "alembic-operator.namespaces" -}}
{{- if .Values.clusterWide }}
{{- list | toJson }}
{{- else if .Values.watchNamespaces }}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{- define "alembic-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "alembic-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alembic-operator.webhookSecretName" -}}
{{- if .Values.webhook.existingSecret }}
{{- .Values.webhook.existingSecret }}
{{- else }}
{{- printf "%s-webhook-tls" (include "alembic-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Conflicting or incomplete options: fail rendering with a message that says what to change.
Included by the Deployment, so every render runs it.
*/}}
{{- define "alembic-operator.validate" -}}
{{- if and .Values.clusterWide .Values.watchNamespaces }}
{{- fail "clusterWide=true conflicts with watchNamespaces: watch either every namespace (clusterWide) or the listed ones (watchNamespaces), not both" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount=%d needs leaderElection.enabled=true: without it every replica would reconcile the same migrations" (int .Values.replicaCount)) }}
{{- end }}
{{- if .Values.webhook.enabled }}
{{- $sources := list }}
{{- if .Values.webhook.existingSecret }}{{ $sources = append $sources "webhook.existingSecret" }}{{ end }}
{{- if .Values.webhook.certManager.enabled }}{{ $sources = append $sources "webhook.certManager.enabled" }}{{ end }}
{{- if .Values.webhook.selfSigned.enabled }}{{ $sources = append $sources "webhook.selfSigned.enabled" }}{{ end }}
{{- if gt (len $sources) 1 }}
{{- fail (printf "webhook: choose at most one TLS source (none means the operator's own managedCertificate), got %s" (join " and " $sources)) }}
{{- end }}
{{- if and .Values.webhook.existingSecret (not .Values.webhook.caBundle) }}
{{- $injected := false }}
{{- range $key, $_ := .Values.webhook.annotations }}
{{- if hasPrefix "cert-manager.io/inject-ca-from" $key }}{{ $injected = true }}{{ end }}
{{- end }}
{{- if not $injected }}
{{- fail "webhook.existingSecret needs webhook.caBundle (base64 PEM of the CA that signed it) or a cert-manager.io/inject-ca-from* annotation in webhook.annotations" }}
{{- end }}
{{- end }}
{{- if and .Values.webhook.caBundle (not .Values.webhook.existingSecret) }}
{{- fail "webhook.caBundle is only used with webhook.existingSecret: cert-manager, selfSigned and the operator's managedCertificate provide their own CA" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether the operator manages the webhook's certificate (no other TLS source chosen). */}}
{{- define "alembic-operator.managedCertificate" -}}
{{- if and .Values.webhook.enabled (not (or .Values.webhook.existingSecret .Values.webhook.certManager.enabled .Values.webhook.selfSigned.enabled)) }}true{{ end }}
{{- end }}

{{- define "alembic-operator.leaseName" -}}
{{- default (include "alembic-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Name of cluster-scoped objects: unique per release name and namespace. */}}
{{- define "alembic-operator.clusterName" -}}
{{- include "alembic-operator.clusterScopedName" (list . "") }}
{{- end }}

{{/*
The name of a cluster-scoped object of this release: <fullname>-<namespace><suffix>. Past 63
characters it is cut to 52 and ends with 10 characters of a hash of the whole name, so releases
in long namespaces never share (or collide on) one ClusterRole or webhook configuration.
*/}}
{{- define "alembic-operator.clusterScopedName" -}}
{{- $root := index . 0 }}
{{- $name := printf "%s-%s%s" (include "alembic-operator.fullname" $root) $root.Release.Namespace (index . 1) }}
{{- if le (len $name) 63 }}
{{- $name }}
{{- else }}
{{- printf "%s-%s" ($name | trunc 52 | trimSuffix "-") ($name | sha256sum | trunc 10) }}
{{- end }}
{{- end }}
