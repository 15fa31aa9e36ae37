#!/usr/bin/env bash
# Renders the plain manifests (deploy/kubernetes/shadowsync.yaml) from the Helm chart with its
# default values, for installations without Helm. `--check` renders to a temporary file and fails
# when the checked-in manifests differ (CI runs it), or when the chart's version and appVersion
# are not the workspace version.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(deploy/dev/tools.sh)
out=deploy/kubernetes/shadowsync.yaml

workspace=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
chart=$(sed -n 's/^version: *//p' helm/shadowsync/Chart.yaml)
app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' helm/shadowsync/Chart.yaml)
if [ "$chart" != "$workspace" ] || [ "$app" != "$workspace" ]; then
  echo "helm/shadowsync/Chart.yaml: version $chart, appVersion $app; the workspace is $workspace" >&2
  exit 1
fi

render() {
  {
    echo "# Rendered from helm/shadowsync with its default values by deploy/kubernetes/render.sh:"
    echo "# do not edit. Create the namespace and the Secrets first (README, Deploy on Kubernetes)."
    "$bin/helm" template shadowsync helm/shadowsync --namespace shadowsync --skip-tests
  }
}

if [ "${1:-}" = "--check" ]; then
  fresh=$(mktemp)
  trap 'rm -f "$fresh"' EXIT
  render > "$fresh"
  if ! diff -u "$out" "$fresh"; then
    echo "deploy/kubernetes/shadowsync.yaml is stale: run deploy/kubernetes/render.sh" >&2
    exit 1
  fi
else
  render > "$out"
  echo "wrote $out" >&2
fi
