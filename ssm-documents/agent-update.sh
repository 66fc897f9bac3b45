# shellcheck shell=bash
# Agent update: runs first, so it must work on agents older than ENV_VAR interpolation
# (3.3.2746.0). Its parameters have no interpolationType: the agent pastes each value here once,
# inside single quotes, and the allowedPatterns admit no quote, '$', backtick, space or newline.
RUN_ID='{{ RunId }}'
STAGE='{{ Stage }}'
BUCKET='{{ Bucket }}'
REGION='{{ Region }}'
MARKER_PREFIX='{{ MarkerPrefix }}'
APP_TAG_KEY='{{ ApplicationTagKey }}'
OWNER_TAG_KEY='{{ OwnerTagKey }}'
pp_begin

# When the marker is written: the package's post-install script restarts amazon-ssm-agent, and
# amazon-ssm-agent.service runs with KillMode=process, so the document worker and this script
# survive the restart; the update runs to its end and the EXIT trap then writes a marker that
# says how it went. A snap refresh is different (snapd stops the whole service cgroup), so it is
# only started (--no-wait) and snapd finishes it after the marker is written.
agent_version() {
  if command -v snap >/dev/null 2>&1 && snap list amazon-ssm-agent >/dev/null 2>&1; then
    snap list amazon-ssm-agent | awk 'NR == 2 { print $2 }'
  elif command -v rpm >/dev/null 2>&1 && rpm -q amazon-ssm-agent >/dev/null 2>&1; then
    rpm -q --queryformat '%{VERSION}' amazon-ssm-agent
  elif command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${Version}' amazon-ssm-agent >/dev/null 2>&1; then
    dpkg-query -W -f='${Version}' amazon-ssm-agent
  fi
}

package_arch() {
  case "$(uname -m)" in
    aarch64 | arm64) printf 'arm64' ;;
    i?86) printf '386' ;;
    *) printf 'amd64' ;;
  esac
}

# The regional bucket AWS-UpdateSSMAgent also installs from.
agent_url() { printf 'https://s3.%s.amazonaws.com/amazon-ssm-%s/latest/linux_%s/%s' "$REGION" "$REGION" "$(package_arch)" "$1"; }

before="$(agent_version || true)"
[ -n "$before" ] || { PP_DETAIL="amazon-ssm-agent is not installed as a snap, rpm or deb package"; exit 1; }

if command -v snap >/dev/null 2>&1 && snap list amazon-ssm-agent >/dev/null 2>&1; then
  change="$(snap refresh --no-wait amazon-ssm-agent 2>&1)" || {
    case "$change" in
      *"has no updates available"* | *"no updates available"*) change="" ;;
      *) PP_DETAIL="snap refresh failed: $change"; exit 1 ;;
    esac
  }
  if [ -n "$change" ]; then PP_DETAIL="snap refresh started (change $change) from $before"; else PP_DETAIL="agent $before is current (snap)"; fi
  exit 0
fi

pm="$(pp_package_manager)" || { PP_DETAIL="no supported package manager on PATH"; exit 1; }
case "$pm" in
  dnf | yum)
    # A repository copy (Amazon Linux) first; otherwise the signed rpm from the regional bucket,
    # which dnf/yum install only when it is newer.
    if "$pm" -q list --available amazon-ssm-agent >/dev/null 2>&1; then
      "$pm" -y update amazon-ssm-agent >&2 || { PP_DETAIL="$pm update amazon-ssm-agent failed"; exit 1; }
    else
      "$pm" -y install "$(agent_url amazon-ssm-agent.rpm)" >&2 || { PP_DETAIL="$pm install from the regional bucket failed"; exit 1; }
    fi
    ;;
  zypper)
    zypper --non-interactive update amazon-ssm-agent >&2 || { PP_DETAIL="zypper update amazon-ssm-agent failed"; exit 1; }
    ;;
  apt-get)
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l
    apt-get -q update >&2 || true
    candidate="$(apt-cache policy amazon-ssm-agent 2>/dev/null | awk '/Candidate:/ { print $2 }')"
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
      apt-get -q -y --only-upgrade install amazon-ssm-agent >&2 || { PP_DETAIL="apt-get upgrade of amazon-ssm-agent failed"; exit 1; }
    else
      deb="$PP_WORK/amazon-ssm-agent.deb"
      curl -sSfL -o "$deb" "$(agent_url amazon-ssm-agent.deb)" || { PP_DETAIL="download from the regional bucket failed"; exit 1; }
      apt-get -q -y install "$deb" >&2 || { PP_DETAIL="apt-get install of the downloaded agent failed"; exit 1; }
    fi
    ;;
esac
after="$(agent_version || true)"
if [ "$before" = "$after" ]; then PP_DETAIL="agent $after is current ($pm)"; else PP_DETAIL="agent updated from $before to $after ($pm)"; fi
