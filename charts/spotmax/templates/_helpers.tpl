{{/* The release's full name: RELEASE-spotmax, or RELEASE when it already says spotmax. */}}
{{- define "spotmax.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "spotmax.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "spotmax.labels" -}}
{{ include "spotmax.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
spotmax.io/region: {{ required "region is required: the AWS region this release serves, e.g. --set region=us-east-1" .Values.region | quote }}
{{- with .Values.account }}
spotmax.io/account: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "spotmax.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spotmax.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Lease of leader election: one per release, so per region and account. */}}
{{- define "spotmax.leaseName" -}}
{{- default (include "spotmax.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "spotmax.image" -}}
{{- $repo := required "image.repository is required: where you pushed the image of make image" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}
