{{/*
Where the components meet. Each value is computed in one place, so the API, the
extractor, the query service, Locust and the helm test agree by construction.
*/}}

{{/* The Strimzi Kafka cluster's name (its bootstrap Service is "<name>-kafka-bootstrap"). */}}
{{- define "common.kafkaCluster" -}}
{{- include "common.nameFor" (dict "ctx" . "name" "kafka") -}}
{{- end -}}

{{/* host:port of Kafka: global.kafka.bootstrap (an external cluster) or this chart's. */}}
{{- define "common.kafkaBootstrap" -}}
{{- $kafka := .Values.global.kafka | default dict -}}
{{- if $kafka.bootstrap -}}
{{- $kafka.bootstrap -}}
{{- else -}}
{{- printf "%s-kafka-bootstrap:9092" (include "common.kafkaCluster" .) -}}
{{- end -}}
{{- end -}}

{{- define "common.topic" -}}
{{- (.Values.global.kafka | default dict).topic | default "events" -}}
{{- end -}}

{{/* The NameNode's Service. */}}
{{- define "common.namenode" -}}
{{- printf "%s-namenode" (include "common.nameFor" (dict "ctx" . "name" "hdfs")) -}}
{{- end -}}

{{/* The lake's root URI: global.lake.root (an external store) or this chart's HDFS. */}}
{{- define "common.lakeRoot" -}}
{{- $lake := .Values.global.lake | default dict -}}
{{- if $lake.root -}}
{{- trimSuffix "/" $lake.root -}}
{{- else -}}
{{- printf "hdfs://%s:8020%s" (include "common.namenode" .) ($lake.path | default "/questlog") -}}
{{- end -}}
{{- end -}}

{{/* The event API's and the query service's in-cluster base URLs: this release's, or
global.endpoints.* (a Locust-only release aimed at another release's services). */}}
{{- define "common.apiUrl" -}}
{{- $endpoints := .Values.global.endpoints | default dict -}}
{{- $endpoints.api | default (printf "http://%s:5000" (include "common.nameFor" (dict "ctx" . "name" "api"))) -}}
{{- end -}}
{{- define "common.queryUrl" -}}
{{- $endpoints := .Values.global.endpoints | default dict -}}
{{- $endpoints.query | default (printf "http://%s:8000" (include "common.nameFor" (dict "ctx" . "name" "query"))) -}}
{{- end -}}

{{/* Pods that may talk to Kafka carry this label (Strimzi's listener policy admits them). */}}
{{- define "common.kafkaClientLabel" -}}
questlog.dev/kafka-client: "true"
{{- end -}}
{{/* Pods that may talk to HDFS carry this label (the HDFS NetworkPolicies admit them). */}}
{{- define "common.hdfsClientLabel" -}}
questlog.dev/hdfs-client: "true"
{{- end -}}
