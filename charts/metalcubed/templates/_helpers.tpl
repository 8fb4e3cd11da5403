{{/* Labels Helm adds to every object, beside the manifests' own app.kubernetes.io/* labels
(kept as they are: the Deployments' selectors use them and must not change on upgrade). */}}
{{- define "metalcubed.chartLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "metalcubed.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/* The address hosts reach the engine at, without scheme or port: the provisioning network
address in PXE mode (hostNetwork on the node that has it), else the Pod's IP. */}}
{{- define "metalcubed.engineHost" -}}
{{- if .Values.provisioning.pxe.enabled -}}
{{ .Values.provisioning.network.ip }}
{{- else -}}
$(POD_IP)
{{- end -}}
{{- end }}

{{- define "metalcubed.agentAPIURL" -}}
{{- .Values.provisioning.agentAPIURL | default (printf "http://%s:%d" (include "metalcubed.engineHost" .) (int .Values.ports.agentAPI)) -}}
{{- end }}

{{- define "metalcubed.bootServerURL" -}}
{{- .Values.provisioning.bootServerURL | default (printf "http://%s:%d" (include "metalcubed.engineHost" .) (int .Values.ports.bootServer)) -}}
{{- end }}

{{/* Where the engine listens: every interface of the Pod, or only the provisioning network
address when it runs in the node's network namespace (PXE mode). */}}
{{- define "metalcubed.bindHost" -}}
{{- if .Values.provisioning.pxe.enabled -}}{{ .Values.provisioning.network.ip }}{{- end -}}
{{- end }}
