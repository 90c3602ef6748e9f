# Least-privilege policy for the mistral-key-rotator daemon.
#
# Written for the shipped example configuration: kv_mount "secret", keys under
# "mistral/", state under "mistral-rotator/state", a vault sink under "portal/".
# Change the paths to match yours; keep the capabilities.
#
#   bao policy write mistral-rotator deploy/vault/rotator-policy.hcl

# Keys: poll metadata for new versions (and list tenants for `discover`), read the data.
# Read-only: new keys are written by operators (`bao kv put`, or `rotator stage` with an
# operator's token), never by the daemon.
path "secret/metadata/mistral/*" {
  capabilities = ["read", "list"]
}
path "secret/data/mistral/*" {
  capabilities = ["read"]
}

# State: which version is active, written with check-and-set.
path "secret/data/mistral-rotator/state/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/mistral-rotator/state/*" {
  capabilities = ["read"]
}

# Vault sinks: one stanza per `type: vault` sink path.
path "secret/data/portal/*" {
  capabilities = ["create", "read", "update"]
}

# The daemon's own token, even for roles created with token_no_default_policy.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
