{{/* Labels of the umbrella's own objects (the helm test). */}}
{{- define "questlog.testLabels" -}}
app.kubernetes.io/name: questlog-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
app.kubernetes.io/part-of: questlog
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels of the Grafana dashboards' ConfigMap (templates/grafana-dashboards.yaml). */}}
{{- define "questlog.dashboardLabels" -}}
app.kubernetes.io/name: questlog-dashboards
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: grafana-dashboards
app.kubernetes.io/part-of: questlog
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
