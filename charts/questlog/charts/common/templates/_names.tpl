{{/*
Names. Every object of a component is "<release>-<component>[-<part>]", cut to 63
characters, so one component can find another's Service by the same rule.
*/}}

{{/* "<release>-<name>": common.nameFor (dict "ctx" . "name" "api") */}}
{{- define "common.nameFor" -}}
{{- printf "%s-%s" .ctx.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The component's own name: "<release>-<chart>". */}}
{{- define "common.fullname" -}}
{{- include "common.nameFor" (dict "ctx" . "name" .Chart.Name) -}}
{{- end -}}

{{/* A part of a component: common.partName (dict "ctx" . "part" "master") */}}
{{- define "common.partName" -}}
{{- printf "%s-%s" (include "common.fullname" .ctx) .part | trunc 63 | trimSuffix "-" -}}
{{- end -}}
