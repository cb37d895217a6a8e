{{- define "nodescraper.name" -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- define "nodescraper.labels" -}}
app.kubernetes.io/name: nodescraper
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "nodescraper.apiKeySecret" -}}
{{- if .Values.datadog.apiKeyExistingSecret -}}{{ .Values.datadog.apiKeyExistingSecret }}{{- else -}}{{ include "nodescraper.name" . }}-api-key{{- end -}}
{{- end -}}
