{{/*
Objects every HTTP component has, from its own values:
  service:  {type, port, nodePort}      -> common.service
  pdb:      {enabled, minAvailable}     -> common.pdb
The container port is named "http".
*/}}
{{- define "common.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "common.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.service.port }}
      targetPort: http
      protocol: TCP
      {{- if and (eq .Values.service.type "NodePort") .Values.service.nodePort }}
      nodePort: {{ .Values.service.nodePort }}
      {{- end }}
{{- end -}}

{{- define "common.pdb" -}}
{{- if .Values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  minAvailable: {{ .Values.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* nodeSelector, tolerations and affinity of a pod spec, from the component's values. */}}
{{- define "common.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
A Secret holding one random value, made at install and kept across upgrades (lookup; on
`helm template` there is nothing to look up, so a new one is drawn):
common.generatedSecret (dict "ctx" . "part" "read-token" "key" "read-token" "length" 40)
*/}}
{{- define "common.generatedSecret" -}}
{{- $name := include "common.partName" (dict "ctx" .ctx "part" .part) -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace $name -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  labels:
    {{- include "common.labels" .ctx | nindent 4 }}
type: Opaque
data:
  {{- if and $existing (hasKey ($existing.data | default dict) .key) }}
  {{ .key }}: {{ index $existing.data .key }}
  {{- else }}
  {{ .key }}: {{ randAlphaNum .length | b64enc }}
  {{- end }}
{{- end -}}
