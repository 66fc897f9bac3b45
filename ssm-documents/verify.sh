# shellcheck shell=bash
# Verify: after the approved reboot, the instance booted again (boot time not before RebootedAfter)
# and its application is healthy: systemd units active, local health URL answering 2xx/3xx. The
# checks come from the parameters and from the instance's own tags HealthUnits / HealthUrl
# (lambda/shared/approvals.ts HEALTH_TAG_KEYS); HealthServices / ServiceNames are for Windows.
pp_params_from_env
REBOOTED_AFTER="${SSM_RebootedAfter:-}"
SYSTEMD_UNITS="${SSM_SystemdUnits:-}"
HEALTH_URL="${SSM_HealthUrl:-}"
pp_begin

# The documents' allowedPatterns (verify.yaml); tag values are held to the same.
TIME_PATTERN='^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z$'
UNITS_PATTERN='^([A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}(,[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}){0,49})?$'
URL_PATTERN='^(http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?(/[A-Za-z0-9._~/%-]{0,200})?)?$'
pp_check_value RebootedAfter "$REBOOTED_AFTER" "$TIME_PATTERN" || { PP_DETAIL="bad RebootedAfter"; exit 1; }
pp_check_value SystemdUnits "$SYSTEMD_UNITS" "$UNITS_PATTERN" || { PP_DETAIL="bad SystemdUnits"; exit 1; }
pp_check_value HealthUrl "$HEALTH_URL" "$URL_PATTERN" || { PP_DETAIL="bad HealthUrl"; exit 1; }

iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# Boot time in epoch seconds: the kernel's btime, else `uptime -s` (local time).
boot_epoch() {
  local stat="${PP_PROC_STAT:-/proc/stat}" btime="" since=""
  if [ -r "$stat" ]; then btime="$(awk '$1 == "btime" { print $2; exit }' "$stat")"; fi
  if [[ ! "$btime" =~ ^[0-9]+$ ]] && command -v uptime >/dev/null 2>&1; then
    since="$(uptime -s 2>/dev/null || true)"
    if [ -n "$since" ]; then btime="$(date -d "$since" +%s 2>/dev/null || true)"; fi
  fi
  [[ "$btime" =~ ^[0-9]+$ ]] || return 1
  printf '%s' "$btime"
}

after="$(date -u -d "$REBOOTED_AFTER" +%s)" || { PP_DETAIL="cannot read RebootedAfter $REBOOTED_AFTER"; exit 1; }
boot="$(boot_epoch)" || { PP_DETAIL="boot time unknown (no btime in /proc/stat, no uptime -s)"; exit 1; }
# Whole seconds on both sides: a boot within the second of the request still counts.
if [ "$boot" -lt "$after" ]; then
  PP_DETAIL="did not reboot: boot time $(iso "$boot") is before $(iso "$after")"
  exit 1
fi

checks=("boot $(iso "$boot") after $(iso "$after")")
failed=0

notes=()
# A tag is the instance owner's input: spaces dropped, then held to the parameter's pattern; an
# invalid value is ignored and named in the detail. Sets TAG_VALUE.
tag_list() {
  local key="$1" pattern="$2" value
  TAG_VALUE=""
  value="$(pp_tag "$key")"
  value="${value//[[:space:]]/}"
  if [ -z "$value" ]; then return 0; fi
  if [[ "$value" =~ $pattern ]]; then
    TAG_VALUE="$value"
  else
    notes+=("tag $key ignored: not allowed")
  fi
}

# Comma-separated lists -> one item per line, first occurrence kept.
merge_lists() {
  printf '%s\n' "$@" | tr ',' '\n' | awk 'NF && !seen[$0]++'
}

tag_list HealthUnits "$UNITS_PATTERN"
tag_units="$TAG_VALUE"
tag_list HealthUrl "$URL_PATTERN"
tag_url="$TAG_VALUE"

mapfile -t units < <(merge_lists "$SYSTEMD_UNITS" "$tag_units")
mapfile -t urls < <(merge_lists "$HEALTH_URL" "$tag_url")

for unit in "${units[@]}"; do
  if ! command -v systemctl >/dev/null 2>&1; then
    checks+=("unit $unit not checked: systemctl not found")
    failed=$((failed + 1))
    continue
  fi
  rc=0
  state="$(systemctl is-active "$unit" 2>/dev/null)" || rc=$?
  state="${state%%$'\n'*}"
  if [ "$rc" -eq 0 ]; then
    checks+=("unit $unit ${state:-active}")
  else
    checks+=("unit $unit ${state:-unknown}")
    failed=$((failed + 1))
  fi
done

for url in "${urls[@]}"; do
  rc=0
  # No proxy: the URL is this instance's own; no redirects: a 3xx already counts as an answer.
  code="$(curl -s -o /dev/null -w '%{http_code}' -m 10 --noproxy '*' "$url" 2>/dev/null)" || rc=$?
  if [[ "$code" =~ ^[23][0-9][0-9]$ ]]; then
    checks+=("url $url $code")
  elif [[ "$code" =~ ^[1-9][0-9][0-9]$ ]]; then
    checks+=("url $url $code")
    failed=$((failed + 1))
  else
    checks+=("url $url no answer (curl exit $rc)")
    failed=$((failed + 1))
  fi
done

if [ "${#units[@]}" -eq 0 ] && [ "${#urls[@]}" -eq 0 ]; then checks+=("no application checks configured"); fi
checks+=("${notes[@]}")

PP_DETAIL="$(printf '%s; ' "${checks[@]}")"
PP_DETAIL="${PP_DETAIL%; }"
total=$((${#units[@]} + ${#urls[@]} + 1))
if [ "$failed" -gt 0 ]; then
  PP_DETAIL="$PP_DETAIL; $failed of $total checks failed"
  exit 1
fi
