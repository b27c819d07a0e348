{{/*
Labels: the app.kubernetes.io/* set on every object; selectors use only name, instance
and component (never a version: selectors are immutable).
Call with the context, or with (dict "ctx" . "component" "master") for a part.
*/}}

{{- define "common.selectorLabels" -}}
{{- $ctx := . -}}
{{- $component := "" -}}
{{- if hasKey . "ctx" }}{{ $ctx = .ctx }}{{ $component = .component }}{{ end -}}
app.kubernetes.io/name: {{ $ctx.Chart.Name }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ $component | default $ctx.Chart.Name }}
{{- end -}}

{{- define "common.labels" -}}
{{- $ctx := . -}}
{{- if hasKey . "ctx" }}{{ $ctx = .ctx }}{{ end -}}
{{ include "common.selectorLabels" . }}
app.kubernetes.io/part-of: questlog
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $ctx.Chart.Name $ctx.Chart.Version }}
{{- end -}}
