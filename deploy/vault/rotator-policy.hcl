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
# OpenBao 2.2+: the metadata of a whole folder in one request (a poll of 10,000 tenants is
# ten requests, not 10,000). Only what the metadata read above already shows. Without it (or
# on HashiCorp Vault, which lacks the endpoint) the daemon reads each key's metadata instead.
path "secret/detailed-metadata/mistral/*" {
  capabilities = ["list"]
}

# Minting (`mistral.admin` and `mint`, Enterprise) is the one case where the daemon writes a
# key: the new key becomes a new version of the key's secret (check-and-set). Only for keys
# with `mint`, grant "create" and "update" on their data path, one stanza per key, e.g.:
#   path "secret/data/mistral/jtel-live-agent" {
#     capabilities = ["create", "read", "update"]
#   }

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
