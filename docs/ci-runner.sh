#!/bin/sh
# A CI job on a plain shell runner: the job's secrets arrive as environment variables; nothing is typed, nothing
# is left behind. Used as is by tests/e2e/test_ci_recipe.py against a real registry.
#
#   IDP_VAULT_KEY      the vault key, a CI secret (openssl rand -base64 32)
#   REGISTRY           the registry prefix, e.g. registry.example.com/team
#   REGISTRY_USER      its robot account; REGISTRY_PASSWORD its password (a CI secret)
#   IMAGE_SOURCE       what to push, e.g. oci:build/image:latest or docker-archive:app.tar
#   IMAGE              where to push it, e.g. registry.example.com/team/app:$CI_COMMIT_SHA
#   REGISTRY_CA_FILE   the registry's CA bundle, for a registry behind a private CA; optional
#   SKOPEO_OPTS        extra skopeo options (e.g. --dest-cert-dir for that CA); optional
set -eu
: "${IDP_VAULT_KEY:?}" "${REGISTRY:?}" "${REGISTRY_USER:?}" "${REGISTRY_PASSWORD:?}" "${IMAGE_SOURCE:?}" "${IMAGE:?}"

# 1. A vault for this job only, opened with the key from the CI secret store (no key file is written).
DOCKER_CREDENTIAL_IDP_KEY="$IDP_VAULT_KEY"
DOCKER_CREDENTIAL_IDP_HOME="$(mktemp -d)"
DOCKER_CONFIG="${DOCKER_CONFIG:-$(mktemp -d)}"
export DOCKER_CREDENTIAL_IDP_KEY DOCKER_CREDENTIAL_IDP_HOME DOCKER_CONFIG
trap 'rm -rf "$DOCKER_CREDENTIAL_IDP_HOME"' EXIT

# 2. Register the registry. The password comes from the environment, never argv.
docker-credential-idp registry add ci --prefix "$REGISTRY" --type basic \
    --username "$REGISTRY_USER" --password-env REGISTRY_PASSWORD ${REGISTRY_CA_FILE:+--ca-file "$REGISTRY_CA_FILE"}
docker-credential-idp registry test ci

# 3. Route docker, BuildKit, skopeo and podman to the helper ("credHelpers" in $DOCKER_CONFIG/config.json).
docker-credential-idp configure-docker

# 4. Push. With a docker daemon or buildkitd this line is `docker buildx build --push -t "$IMAGE" .`.
# shellcheck disable=SC2086  # SKOPEO_OPTS holds several options
skopeo copy ${SKOPEO_OPTS:-} "$IMAGE_SOURCE" "docker://$IMAGE"

# 5. Tools that want a username and password (helm registry login, crane, ...) get them from `creds`.
eval "$(docker-credential-idp creds "$IMAGE" --format env)"
echo "pushed $IMAGE as $REGISTRY_USERNAME"
