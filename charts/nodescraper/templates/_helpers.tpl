{{/*
nodescraper.name: the chart's name (nameOverride), the app.kubernetes.io/name label.
*/}}
{{- define "nodescraper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
nodescraper.fullname: the name of the namespaced objects (DaemonSet,
ServiceAccount, Service, ...): fullnameOverride, else <release>-<name>, or the
release name alone when it already contains the name.
*/}}
{{- define "nodescraper.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "nodescraper.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
nodescraper.clusterName: the name of objects outside the release namespace
(ClusterRole, ClusterRoleBinding, the Roles in referenced namespaces):
<release namespace>-<fullname>, so the same release name in two namespaces
does not collide.
*/}}
{{- define "nodescraper.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "nodescraper.fullname" .) | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "nodescraper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodescraper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nodescraper.labels" -}}
{{ include "nodescraper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "nodescraper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nodescraper.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "nodescraper.apiKeySecret" -}}
{{- if .Values.datadog.apiKeyExistingSecret -}}
{{- .Values.datadog.apiKeyExistingSecret -}}
{{- else -}}
{{- include "nodescraper.fullname" . }}-api-key
{{- end -}}
{{- end -}}

{{/*
nodescraper.hostPath: the node directory of this release's delta state and
spool. Two releases must not share it: its lock lets one agent at a time in.
*/}}
{{- define "nodescraper.hostPath" -}}
{{- .Values.state.hostPath | default (printf "/var/lib/nodescraper/%s-%s" .Release.Namespace .Release.Name) -}}
{{- end -}}

{{/*
nodescraper.referencedByNamespace: referencedObjects merged per namespace,
as JSON {namespace: {secrets: [...], configMaps: [...]}} with sorted,
de-duplicated names: one Role per namespace holds all its objects.
*/}}
{{- define "nodescraper.referencedByNamespace" -}}
{{- $byNS := dict -}}
{{- range .Values.referencedObjects -}}
{{- $cur := get $byNS .namespace -}}
{{- if not $cur -}}
{{- $cur = dict "secrets" (list) "configMaps" (list) -}}
{{- end -}}
{{- $_ := set $cur "secrets" (concat $cur.secrets (.secrets | default list)) -}}
{{- $_ = set $cur "configMaps" (concat $cur.configMaps (.configMaps | default list)) -}}
{{- $_ = set $byNS .namespace $cur -}}
{{- end -}}
{{- range $ns, $cur := $byNS -}}
{{- $_ := set $cur "secrets" ($cur.secrets | uniq | sortAlpha) -}}
{{- $_ = set $cur "configMaps" ($cur.configMaps | uniq | sortAlpha) -}}
{{- end -}}
{{- toJson $byNS -}}
{{- end -}}
