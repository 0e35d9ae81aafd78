#!/usr/bin/env bash
#################################################
# Fake Stable Diffusion WebUI launcher.
# Modeled on AUTOMATIC1111's webui.sh: bash stays the parent of Python and
# relaunches it for as long as launch.py leaves tmp/restart behind
# (POST /sdapi/v1/server-restart). Deliberately no traps, no exec, no set -e:
# default signal handling, exactly like the real script.
#################################################

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"

# Tests and parallel instances get their own tmp/ via FAKE_WEBUI_STATE_DIR;
# launch.py honours the same variable when it touches tmp/restart.
state_dir="${FAKE_WEBUI_STATE_DIR:-$script_dir}"
restart_file="${state_dir}/tmp/restart"

# Same knob as A1111's webui-user.sh.
if [[ -z "${python_cmd}" ]]; then
    python_cmd="python3"
fi

# Some forks' wrappers trap SIGTERM (to clean up, or by accident) and carry on with the loop:
# FAKE_WEBUI_TRAP_TERM=1 models that wrapper, the one that relaunches Python behind a careless kill.
if [[ "${FAKE_WEBUI_TRAP_TERM:-0}" == "1" ]]; then
    trap 'printf "webui.sh: SIGTERM received, carrying on\n"' TERM
fi

# A1111 exports this so launch.py knows a wrapper will relaunch it.
export SD_WEBUI_RESTART=tmp/restart

delimiter="################################################################"

KEEP_GOING=1
exit_code=0
while [[ "$KEEP_GOING" -eq "1" ]]; do
    rm -f -- "$restart_file"

    printf "\n%s\n" "${delimiter}"
    printf "Launching launch.py..."
    printf "\n%s\n" "${delimiter}"

    # Not exec: bash waits here as the parent of Python.
    "${python_cmd}" -u "${script_dir}/launch.py" "$@"
    exit_code=$?

    if [[ ! -f "$restart_file" ]]; then
        KEEP_GOING=0
    else
        printf "Restarting (found %s, launch.py exited %s)\n" "$restart_file" "$exit_code"
    fi
done

exit "$exit_code"
