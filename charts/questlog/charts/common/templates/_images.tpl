{{/*
An image reference: common.image (dict "ctx" . "image" .Values.image)
repository + tag, with global.image.registry in front when set; the tag defaults to
global.image.tag, then the chart's appVersion. "latest" is refused: a release must name
what it runs.
*/}}
{{- define "common.image" -}}
{{- $global := .ctx.Values.global.image | default dict -}}
{{- $tag := .image.tag | default $global.tag | default .ctx.Chart.AppVersion | toString -}}
{{- if eq $tag "latest" -}}
{{- fail (printf "%s: image tag 'latest' is not allowed; pin a version" .ctx.Chart.Name) -}}
{{- end -}}
{{- $registry := .image.registry | default $global.registry -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "common.pullPolicy" -}}
{{- .image.pullPolicy | default (.ctx.Values.global.image | default dict).pullPolicy | default "IfNotPresent" -}}
{{- end -}}
