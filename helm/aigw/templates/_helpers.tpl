{{/*
Names, labels and small shared pieces of the aigw chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "aigw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, else "<release>" when the release name
already contains the chart name, else "<release>-<chart>". Truncated to 63 characters.
*/}}
{{- define "aigw.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "aigw.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's object name: "<fullname>-<component>", within 63 characters. */}}
{{- define "aigw.componentName" -}}
{{- $root := index . 0 }}{{- $component := index . 1 }}
{{- printf "%s-%s" (include "aigw.fullname" $root | trunc (int (sub 62 (len $component)))) $component | trimSuffix "-" }}
{{- end }}

{{- define "aigw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "aigw.labels" -}}
helm.sh/chart: {{ include "aigw.chart" . }}
app.kubernetes.io/name: {{ include "aigw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aigw
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component's objects: (list $ "operator"). */}}
{{- define "aigw.componentLabels" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
{{ include "aigw.labels" $root }}
app.kubernetes.io/component: {{ $component }}
{{- end }}

{{/* Selector labels of one component: stable across upgrades, so never the version. */}}
{{- define "aigw.selectorLabels" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
app.kubernetes.io/name: {{ include "aigw.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $component }}
{{- end }}

{{/* "repository:tag" or "repository@digest"; the tag defaults to the chart's appVersion. */}}
{{- define "aigw.image" -}}
{{- $root := index . 0 }}{{- $image := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "aigw.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "aigw.componentName" (list . "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret (name) and key holding the Redis URL gateways use; empty name for mode none. */}}
{{- define "aigw.redis.secretName" -}}
{{- if eq .Values.redis.mode "internal" }}
{{- include "aigw.componentName" (list . "redis") }}
{{- else if eq .Values.redis.mode "external" }}
{{- if .Values.redis.external.existingSecret }}
{{- .Values.redis.external.existingSecret }}
{{- else if .Values.redis.external.url }}
{{- include "aigw.componentName" (list . "redis-url") }}
{{- else }}
{{- fail "redis.mode=external needs redis.external.existingSecret (a Secret holding the URL) or redis.external.url" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aigw.redis.secretKey" -}}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.existingSecret }}
{{- .Values.redis.external.existingSecretKey }}
{{- else }}
{{- "url" }}
{{- end }}
{{- end }}

{{/* Whether the default AIGateway renders: asked for, and its API served by the cluster. */}}
{{- define "aigw.gateway.renders" -}}
{{- if and .Values.gateway.create (.Capabilities.APIVersions.Has "aigw.dev/v1alpha1/AIGateway") }}true{{ end }}
{{- end }}

{{/* The name of the kopf peering the operator replicas share (`--peering`). */}}
{{- define "aigw.operator.peeringName" -}}
{{- default (include "aigw.componentName" (list . "operator")) .Values.operator.peering.name }}
{{- end }}

{{/*
Whether the peering object(s) render: peering asked for, and the kind served by the cluster
(ClusterKopfPeering when the operator watches all namespaces, KopfPeering otherwise).
*/}}
{{- define "aigw.operator.peeringRenders" -}}
{{- $kind := ternary "KopfPeering" "ClusterKopfPeering" (not (empty .Values.operator.watchNamespaces)) }}
{{- if and .Values.operator.peering.enabled (.Capabilities.APIVersions.Has (printf "kopf.dev/v1/%s" $kind)) }}true{{ end }}
{{- end }}

{{/*
The operator's rules inside the namespaces it watches (a ClusterRole's when it watches all).
Every verb maps onto a call in operator/aigw_operator/kube.py or onto what kopf does for the
handlers in operator/aigw_operator/handlers/; tests/helm/test_rbac.py holds the same list.
*/}}
{{- define "aigw.operator.namespacedRules" -}}
# The five aigw kinds: kopf lists and watches them, and patches its annotations and finalizer onto them.
- apiGroups: [aigw.dev]
  resources: [aigateways, modelroutes, providercredentials, tenantquotas, guardrailpolicies]
  verbs: [list, watch, patch]
# Their status: conditions, observedGeneration and the live fields (operator), handler progress (kopf).
- apiGroups: [aigw.dev]
  resources: [aigateways/status, modelroutes/status, providercredentials/status, tenantquotas/status, guardrailpolicies/status]
  verbs: [patch]
# Everything the operator creates names its AIGateway as owner with blockOwnerDeletion, which
# needs this where the OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift).
- apiGroups: [aigw.dev]
  resources: [aigateways/finalizers]
  verbs: [update]
# Referenced Secrets (provider keys, tenant keys, Redis URLs) are read; <gateway>-credentials is
# written. Holding get/list/watch here is also what lets the operator grant the gateway pods
# get/list/watch on their own two objects (RBAC forbids granting what one does not hold).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update]
# <gateway>-config is read and written; the operator's own ConfigMaps are watched to repair edits.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update]
# The gateway pods' Service and Deployment; the operator's own are watched to put back a deleted one.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update]
# The gateway pods' ServiceAccount, and the Role/RoleBinding that let them read their own
# ConfigMap and Secret (by resourceNames, nothing else).
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, update]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, update]
# The optional HorizontalPodAutoscaler and PodDisruptionBudget of an AIGateway: deleted again
# when its spec stops asking for them.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, update, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, update, delete]
# The ready endpoints of each gateway Service: the pods whose status reports it reads.
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]
# Events on the objects: kopf's handler failures, the operator's status transitions.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}
