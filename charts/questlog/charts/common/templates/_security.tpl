{{/*
The restricted Pod Security Standard, for every pod of the chart:
common.podSecurityContext (dict "uid" 10001) (no uid: the image's own user)  and  common.containerSecurityContext.
*/}}
{{- define "common.podSecurityContext" -}}
runAsNonRoot: true
{{- with .uid }}
runAsUser: {{ . }}
runAsGroup: {{ $.gid | default . }}
fsGroup: {{ $.gid | default . }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "common.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/*
Spark's containers: restricted too, but with a writable root file system (the image's
entrypoint writes its java options under /tmp, and Spark its work files).
*/}}
{{- define "common.sparkContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: false
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}
