# shellcheck shell=bash
# Patch: install the pending critical and security updates, never restart the instance.
pp_params_from_env
pp_begin

pm="$(pp_package_manager)" || { PP_DETAIL="no supported package manager (dnf, yum, apt-get, zypper) on PATH"; exit 1; }
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1
if [ "$pm" = "apt-get" ]; then
  apt-get -q update >&2 || { PP_DETAIL="apt-get update failed"; exit 1; }
fi
pp_security_updates "$pm" >"$PP_WORK/before.tsv"
pending=$(wc -l <"$PP_WORK/before.tsv")
pp_log "$pending security updates pending ($pm)"

rc=0
if [ "$pending" -gt 0 ]; then
  case "$pm" in
    dnf | yum)
      "$pm" -y --security upgrade >&2 || rc=$?
      ;;
    apt-get)
      cut -f1 "$PP_WORK/before.tsv" >"$PP_WORK/names.txt"
      mapfile -t names <"$PP_WORK/names.txt"
      apt-get -q -y --only-upgrade -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        install "${names[@]}" >&2 || rc=$?
      ;;
    zypper)
      # 102: installed, reboot needed; 103: zypper updated itself and wants a second pass.
      zypper --non-interactive patch --category security --auto-agree-with-licenses >&2 || rc=$?
      if [ "$rc" -eq 103 ]; then rc=0; zypper --non-interactive patch --category security --auto-agree-with-licenses >&2 || rc=$?; fi
      if [ "$rc" -eq 102 ]; then rc=0; fi
      ;;
  esac
fi

pp_security_updates "$pm" >"$PP_WORK/after.tsv"
failed=$(LC_ALL=C comm -12 "$PP_WORK/before.tsv" "$PP_WORK/after.tsv" | wc -l)
installed=$((pending - failed))
reboot="$(pp_reboot_pending)"
PP_DETAIL="installed=$installed failed=$failed rebootRequired=$reboot manager=$pm"
if [ "$rc" -ne 0 ]; then
  PP_DETAIL="$PP_DETAIL; $pm exited with $rc"
  exit "$rc"
fi
