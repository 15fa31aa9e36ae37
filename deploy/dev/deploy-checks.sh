#!/usr/bin/env bash
# Static checks of what deploys shadowsync (CI runs them; .ci/run):
#   helm lint --strict, with the default values and a production-like values file;
#   both renders valid for Kubernetes 1.25 (oldest the validator knows), 1.30 and 1.35 (newest),
#   in strict mode (an unknown field is an error);
#   hadolint on the Dockerfile;
#   deploy/kubernetes/ up to date with the chart.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(deploy/dev/tools.sh)
chart=helm/shadowsync
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT

for values in default ci/production-values.yaml; do
  args=()
  [ "$values" = default ] || args=(-f "$chart/$values")
  "$bin/helm" lint --strict "$chart" "${args[@]}"
  file="$rendered/$(basename "$values" .yaml).yaml"
  "$bin/helm" template shadowsync "$chart" --namespace shadowsync "${args[@]}" > "$file"
  for kubernetes in 1.25.0 1.30.0 1.35.0; do
    echo "kubernetes-validate --strict $kubernetes: $values" >&2
    "$bin/kubernetes-validate" --strict --quiet --kubernetes-version "$kubernetes" "$file"
  done
done
"$bin/hadolint" deploy/docker/Dockerfile
deploy/kubernetes/render.sh --check
echo "deploy checks passed" >&2
