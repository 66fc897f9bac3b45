# shellcheck shell=bash
# Failed check: security updates still pending after the patch stage, and whether a reboot is
# pending, to s3://Bucket/OutputPrefix<instanceId>.csv.
pp_params_from_env
OUTPUT_PREFIX="${SSM_OutputPrefix:-}"
pp_begin
pp_check_prefix OutputPrefix "$OUTPUT_PREFIX" || { PP_DETAIL="bad OutputPrefix"; exit 1; }

pm="$(pp_package_manager)" || { PP_DETAIL="no supported package manager (dnf, yum, apt-get, zypper) on PATH"; exit 1; }
pp_security_updates "$pm" >"$PP_WORK/pending.tsv"
reboot="$(pp_reboot_pending)"
checked_at="$(pp_now)"
csv="$PP_WORK/failed.csv"
printf 'instance_id,name,version,reason,reboot_pending,checked_at\n' >"$csv"
count=0
while IFS=$'\t' read -r name version; do
  pp_csv_row "$INSTANCE_ID" "$name" "$version" "security update not installed ($pm)" "$reboot" "$checked_at" >>"$csv"
  count=$((count + 1))
done <"$PP_WORK/pending.tsv"
pp_s3_put "$csv" "${OUTPUT_PREFIX}${INSTANCE_ID}.csv"
PP_DETAIL="failed=$count rebootPending=$reboot manager=$pm"
