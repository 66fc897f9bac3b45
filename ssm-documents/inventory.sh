# shellcheck shell=bash
# Inventory: one CSV row per installed package, to s3://Bucket/OutputPrefix<instanceId>.csv.
pp_params_from_env
PHASE="${SSM_Phase:-}"
OUTPUT_PREFIX="${SSM_OutputPrefix:-}"
pp_begin
pp_check_value Phase "$PHASE" '^(pre|post)$' || { PP_DETAIL="bad Phase"; exit 1; }
pp_check_prefix OutputPrefix "$OUTPUT_PREFIX" || { PP_DETAIL="bad OutputPrefix"; exit 1; }

owner="$(pp_tag "$OWNER_TAG_KEY")"
application="$(pp_tag "$APP_TAG_KEY")"
domain="$(pp_domain)"
csv="$PP_WORK/inventory.csv"
packages="$PP_WORK/packages.tsv"

# name<TAB>version<TAB>installed_on (ISO date or '')
if command -v dpkg-query >/dev/null 2>&1; then
  source_name="dpkg"
  dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n' >"$PP_WORK/dpkg.tsv"
  # dpkg keeps no install date; the mtime of the package's file list is the last install.
  while IFS=$'\t' read -r status name version arch; do
    [ "${status:0:2}" = "ii" ] || continue
    installed_on=""
    for list in "/var/lib/dpkg/info/$name:$arch.list" "/var/lib/dpkg/info/$name.list"; do
      if [ -e "$list" ]; then installed_on="$(date -u -d "@$(stat -c %Y "$list")" +%Y-%m-%dT%H:%M:%SZ)"; break; fi
    done
    printf '%s\t%s\t%s\n' "$name" "$version" "$installed_on"
  done <"$PP_WORK/dpkg.tsv" >"$packages"
elif command -v rpm >/dev/null 2>&1; then
  source_name="rpm"
  rpm -qa --queryformat '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\t%{INSTALLTIME}\n' >"$PP_WORK/rpm.tsv"
  while IFS=$'\t' read -r name version installtime; do
    version="${version#0:}"
    installed_on=""
    if [[ "$installtime" =~ ^[0-9]+$ ]]; then installed_on="$(date -u -d "@$installtime" +%Y-%m-%dT%H:%M:%SZ)"; fi
    printf '%s\t%s\t%s\n' "$name" "$version" "$installed_on"
  done <"$PP_WORK/rpm.tsv" >"$packages"
else
  PP_DETAIL="no package database found (neither dpkg-query nor rpm on PATH)"
  exit 1
fi

printf 'instance_id,owner,domain,application,name,version,installed_on\n' >"$csv"
count=0
while IFS=$'\t' read -r name version installed_on; do
  pp_csv_row "$INSTANCE_ID" "$owner" "$domain" "$application" "$name" "$version" "$installed_on" >>"$csv"
  count=$((count + 1))
done < <(LC_ALL=C sort -t $'\t' -k1,1 -k2,2 "$packages")

pp_s3_put "$csv" "${OUTPUT_PREFIX}${INSTANCE_ID}.csv"
PP_DETAIL="$PHASE inventory: $count packages from $source_name"
