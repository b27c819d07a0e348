{{/*
A size in bytes, for the memory checks of trino.checkMemory:
  trino.bytes (dict "size" "2G" "units" "jvm")     -Xmx style: k, m, g, t in either case
  trino.bytes (dict "size" "1GB" "units" "trino")  Trino's data sizes: B, kB, MB, GB, TB
  trino.bytes (dict "size" "3Gi" "units" "k8s")    a Kubernetes quantity: Ki..Ti, k..T, none
Whole numbers only (values.schema.json allows no other form). JVM and Trino sizes are
1024-based; Kubernetes' k, M, G, T are 1000-based.
*/}}
{{- define "trino.bytes" -}}
{{- $size := toString .size -}}
{{- $number := regexFind "^[0-9]+" $size -}}
{{- $unit := trimPrefix $number $size -}}
{{- $ki := 1024 -}}{{- $mi := mul $ki 1024 -}}{{- $gi := mul $mi 1024 -}}{{- $ti := mul $gi 1024 -}}
{{- $units := dict
      "jvm" (dict "k" $ki "K" $ki "m" $mi "M" $mi "g" $gi "G" $gi "t" $ti "T" $ti)
      "trino" (dict "B" 1 "kB" $ki "MB" $mi "GB" $gi "TB" $ti)
      "k8s" (dict "" 1 "Ki" $ki "Mi" $mi "Gi" $gi "Ti" $ti
                  "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000) -}}
{{- $table := index $units .units -}}
{{- if or (not $number) (not (hasKey $table $unit)) -}}
{{- fail (printf "trino: cannot read the size %q (%s units: %s)" $size .units (keys $table | sortAlpha | join ", ")) -}}
{{- end -}}
{{- mul (atoi $number) (index $table $unit) -}}
{{- end -}}

{{/*
Refuse memory settings Trino or the kernel would refuse later:
- Trino keeps 30% of the heap as headroom (memory.heap-headroom-per-node) and will not
  start unless query.max-memory-per-node + that headroom fits the heap;
- the container's memory limit holds the heap plus the JVM's own memory (metaspace, code
  cache, thread stacks, direct buffers): at least 512Mi more, or the pod is OOM-killed.
*/}}
{{- define "trino.checkMemory" -}}
{{- $heap := include "trino.bytes" (dict "size" .Values.heap "units" "jvm") | atoi -}}
{{- $perNode := include "trino.bytes" (dict "size" .Values.queryMaxMemoryPerNode "units" "trino") | atoi -}}
{{- if gt (mul $perNode 10) (mul $heap 7) -}}
{{- fail (printf "trino: queryMaxMemoryPerNode (%s) + 30%% of the heap (%s) must fit the heap, or Trino refuses to start: lower queryMaxMemoryPerNode to 70%% of the heap at most, or raise heap" .Values.queryMaxMemoryPerNode .Values.heap) -}}
{{- end -}}
{{- $limit := include "trino.bytes" (dict "size" .Values.resources.limits.memory "units" "k8s") | atoi -}}
{{- if lt $limit (add $heap (mul 512 1024 1024)) -}}
{{- fail (printf "trino: resources.limits.memory (%s) must exceed the heap (%s) by 512Mi at least (the JVM's memory beside the heap); heap + 1Gi is a good start" (toString .Values.resources.limits.memory) .Values.heap) -}}
{{- end -}}
{{- end -}}
