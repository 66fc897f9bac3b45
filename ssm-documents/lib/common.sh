#!/usr/bin/env bash
# shellcheck shell=bash
# patch-pipeline common prelude: lib/documents.ts puts it before every Linux document script.
# Functions only, plus the state the exit trap reads; a document script sets the parameter
# variables (pp_params_from_env, or its own block), then calls pp_begin.
# aws:runShellScript starts the script through sh; the shebang above asks for bash, and this
# guard covers a system where the script is read by another shell.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -Eeuo pipefail
umask 077

RUN_ID="" STAGE="" BUCKET="" REGION="" MARKER_PREFIX="" APP_TAG_KEY="" OWNER_TAG_KEY=""
INSTANCE_ID=""
PP_STARTED_AT=""
PP_DETAIL=""
PP_WORK=""
PP_IMDS_TOKEN=""
PP_IMDS_BASE="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"
PP_IMDS_BASE="${PP_IMDS_BASE%/}"

pp_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

pp_log() { printf '%s [%s] %s\n' "$(pp_now)" "${STAGE:-patch-pipeline}" "$*" >&2; }

# Reads the ENV_VAR-interpolated parameters (SSM_<Name>, set by SSM Agent 3.3.2746.0+).
pp_params_from_env() {
  RUN_ID="${SSM_RunId:-}"
  STAGE="${SSM_Stage:-}"
  BUCKET="${SSM_Bucket:-}"
  REGION="${SSM_Region:-}"
  MARKER_PREFIX="${SSM_MarkerPrefix:-}"
  APP_TAG_KEY="${SSM_ApplicationTagKey:-}"
  OWNER_TAG_KEY="${SSM_OwnerTagKey:-}"
}

# Second line of defence behind the documents' allowedPattern: a value is a name, never code.
pp_check_value() {
  local name="$1" value="$2" pattern="$3"
  if [[ ! "$value" =~ $pattern ]]; then
    printf 'parameter %s is missing or not allowed: %q\n' "$name" "$value" >&2
    return 1
  fi
}

pp_check_prefix() { pp_check_value "$1" "$2" '^runs/[A-Za-z0-9_-]{1,80}/([a-z0-9-]{1,64}/){1,4}$'; }

pp_json_string() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/ }"
  s="${s//$'\r'/ }"
  s="${s//$'\t'/ }"
  printf '"%s"' "$s"
}

# CSV as every document writes it: every field quoted, quotes doubled, line breaks flattened,
# so one record is one line and the awk reader in compare can stay simple.
pp_csv_field() {
  local s="$1"
  s="${s//$'\r'/ }"
  s="${s//$'\n'/ }"
  s="${s//\"/\"\"}"
  printf '"%s"' "$s"
}

pp_csv_row() {
  local sep=""
  local field
  for field in "$@"; do
    printf '%s' "$sep"
    pp_csv_field "$field"
    sep=","
  done
  printf '\n'
}

# IMDSv2 GET; prints nothing (and succeeds) when metadata is off or the path does not exist.
pp_imds() {
  local path="$1"
  command -v curl >/dev/null 2>&1 || return 0
  if [ -z "$PP_IMDS_TOKEN" ]; then
    PP_IMDS_TOKEN="$(curl -sf -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' \
      "$PP_IMDS_BASE/latest/api/token" 2>/dev/null || true)"
  fi
  [ -n "$PP_IMDS_TOKEN" ] || return 0
  curl -sf -m 2 -H "X-aws-ec2-metadata-token: $PP_IMDS_TOKEN" "$PP_IMDS_BASE$path" 2>/dev/null || true
}

pp_instance_id() {
  if [ -n "${AWS_SSM_INSTANCE_ID:-}" ]; then
    printf '%s' "$AWS_SSM_INSTANCE_ID"
  else
    pp_imds /latest/meta-data/instance-id
  fi
}

# Instance tag through instance metadata tags; '' when the tag or metadata tags are off.
pp_tag() {
  local key="$1"
  [ -n "$key" ] || return 0
  pp_imds "/latest/meta-data/tags/instance/$key"
}

pp_domain() { hostname -d 2>/dev/null || true; }

pp_s3_put() {
  local file="$1" key="$2"
  aws s3 cp "$file" "s3://$BUCKET/$key" --region "$REGION" --only-show-errors
}

pp_s3_get() {
  local key="$1" file="$2"
  aws s3 cp "s3://$BUCKET/$key" "$file" --region "$REGION" --only-show-errors
}

# EXIT trap: the marker is the last thing the document does, Success only on a clean exit.
pp_finish() {
  local rc=$?
  set +e
  trap - EXIT
  local status="Success"
  [ "$rc" -eq 0 ] || status="Failed"
  if [ "$status" = "Failed" ] && [ -z "$PP_DETAIL" ]; then PP_DETAIL="script failed with exit code $rc"; fi
  if [ -n "$BUCKET" ] && [ -n "$INSTANCE_ID" ] && [ -n "$PP_WORK" ]; then
    local marker="$PP_WORK/marker.json"
    {
      printf '{"runId":%s,"stage":%s,"instanceId":%s,' \
        "$(pp_json_string "$RUN_ID")" "$(pp_json_string "$STAGE")" "$(pp_json_string "$INSTANCE_ID")"
      printf '"status":%s,"startedAt":%s,"finishedAt":%s,"detail":%s}\n' \
        "$(pp_json_string "$status")" "$(pp_json_string "$PP_STARTED_AT")" \
        "$(pp_json_string "$(pp_now)")" "$(pp_json_string "$PP_DETAIL")"
    } >"$marker"
    if pp_s3_put "$marker" "${MARKER_PREFIX}${INSTANCE_ID}.json"; then
      pp_log "marker $status written: s3://$BUCKET/${MARKER_PREFIX}${INSTANCE_ID}.json ($PP_DETAIL)"
    else
      pp_log "could not write the marker"
      [ "$rc" -ne 0 ] || rc=1
    fi
  else
    pp_log "no marker: bucket or instance id unknown ($PP_DETAIL)"
    [ "$rc" -ne 0 ] || rc=1
  fi
  [ -z "$PP_WORK" ] || rm -rf "$PP_WORK"
  exit "$rc"
}

pp_begin() {
  PP_STARTED_AT="$(pp_now)"
  trap pp_finish EXIT
  PP_WORK="$(mktemp -d "${TMPDIR:-/tmp}/patch-pipeline.XXXXXX")"
  INSTANCE_ID="$(pp_instance_id)"
  if [ -z "$INSTANCE_ID" ]; then PP_DETAIL="instance id unknown (no AWS_SSM_INSTANCE_ID, no IMDS)"; exit 1; fi
  pp_check_value InstanceId "$INSTANCE_ID" '^m?i-[0-9a-f]{8,32}$' || { INSTANCE_ID=""; PP_DETAIL="bad instance id"; exit 1; }
  pp_check_value Bucket "$BUCKET" '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' || { BUCKET=""; PP_DETAIL="bad Bucket"; exit 1; }
  pp_check_value Region "$REGION" '^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$' || { PP_DETAIL="bad Region"; exit 1; }
  pp_check_prefix MarkerPrefix "$MARKER_PREFIX" || { BUCKET=""; PP_DETAIL="bad MarkerPrefix"; exit 1; }
  pp_check_value RunId "$RUN_ID" '^[A-Za-z0-9_-]{1,80}$' || { PP_DETAIL="bad RunId"; exit 1; }
  pp_check_value Stage "$STAGE" '^[a-z0-9-]{1,64}$' || { PP_DETAIL="bad Stage"; exit 1; }
  pp_check_value ApplicationTagKey "$APP_TAG_KEY" '^[A-Za-z0-9_.:+=@-]{1,128}$' || { PP_DETAIL="bad ApplicationTagKey"; exit 1; }
  pp_check_value OwnerTagKey "$OWNER_TAG_KEY" '^[A-Za-z0-9_.:+=@-]{1,128}$' || { PP_DETAIL="bad OwnerTagKey"; exit 1; }
  pp_log "run $RUN_ID stage $STAGE on $INSTANCE_ID"
}

# The first package manager found through PATH, in preference order (never an absolute path).
pp_package_manager() {
  local pm
  for pm in dnf yum apt-get zypper; do
    if command -v "$pm" >/dev/null 2>&1; then printf '%s' "$pm"; return 0; fi
  done
  return 1
}

# Reboot pending: needs-restarting -r exits 1 when one is (RHEL family); Debian leaves a file.
pp_reboot_pending() {
  if [ -e "${PP_REBOOT_REQUIRED_FILE:-/var/run/reboot-required}" ]; then printf 'true'; return 0; fi
  if command -v needs-restarting >/dev/null 2>&1; then
    local rc=0
    needs-restarting -r >/dev/null 2>&1 || rc=$?
    if [ "$rc" -eq 1 ]; then printf 'true'; return 0; fi
  fi
  printf 'false'
}

# Security updates not yet installed, one "name<TAB>version" line each (sorted, unique).
pp_security_updates() {
  local pm="$1"
  case "$pm" in
    dnf | yum)
      if [ "$pm" = "dnf" ]; then dnf -q -y updateinfo list --security --available 2>/dev/null; else yum -q -y updateinfo list security 2>/dev/null; fi | awk '$2 ~ /Sec/ { print $3 }' |
        while read -r nevra; do
          local rest="${nevra%-*}"
          local name="${rest%-*}"
          printf '%s\t%s\n' "$name" "${nevra#"$name"-}"
        done
      ;;
    apt-get)
      # Simulated upgrade, kept to the packages whose candidate comes from a -security pocket.
      apt-get -s -q -o Debug::NoLocking=1 dist-upgrade 2>/dev/null |
        sed -n 's/^Inst \([^ ]*\) \(\[[^]]*\] \)\{0,1\}(\([^ ]*\) .*-[Ss]ecurity.*/\1\t\3/p'
      ;;
    zypper)
      zypper -q --non-interactive list-patches --category security 2>/dev/null |
        awk -F'|' 'NF >= 3 && $2 !~ /Name/ && $1 !~ /^-/ { gsub(/ /, "", $2); if ($2 != "") print $2 "\t" }'
      ;;
  esac | LC_ALL=C sort -u
}
