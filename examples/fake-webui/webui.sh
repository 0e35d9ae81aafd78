#!/usr/bin/env bash
#################################################
# Fake Stable Diffusion WebUI launcher: the behaviour of AUTOMATIC1111's own webui.sh, step by step
# (webui-user.sh, venv_dir and "-", python_cmd, LAUNCH_SCRIPT, the root refusal and -f, the
# SD_WEBUI_RESTART / tmp/restart relaunch loop), without the install steps (no git clone, no pip).
# Copied from AUTOMATIC1111/stable-diffusion-webui webui.sh: the getopts/root-refusal block as in commit
# 80adb6979d46bbb832254004cac4f4f9bec9efb3, the use_venv / python -u loop as in v1.6 and later
# (KEEP_GOING, export SD_WEBUI_RESTART=tmp/restart, `while [[ ! -f tmp/restart ]]`).
# Like the real script: no exec (bash stays the parent of Python), no set -e, no traps (default signal
# handling), and "$@" goes to launch.py unchanged, -f included (A1111's cmd_args accepts a hidden -f).
# Deliberate differences, for tests: tmp/ lives in $FAKE_WEBUI_STATE_DIR when set; no cd into
# install_dir/clone_dir (scripts are found by absolute path, Python inherits the caller's cwd);
# venv_dir defaults to "-" through the bundled webui-user.sh; FAKE_WEBUI_TRAP_TERM=1 adds a trap.
#################################################

SCRIPT_DIR=$( cd -- "$( dirname -- "${BASH_SOURCE[0]}" )" &> /dev/null && pwd )

# If run from macOS, load defaults from webui-macos-env.sh
if [[ "$OSTYPE" == "darwin"* ]]; then
    if [[ -f "$SCRIPT_DIR"/webui-macos-env.sh ]]
        then
        source "$SCRIPT_DIR"/webui-macos-env.sh
    fi
fi

# Read variables from webui-user.sh
# shellcheck source=/dev/null
if [[ -f "$SCRIPT_DIR"/webui-user.sh ]]
then
    source "$SCRIPT_DIR"/webui-user.sh
fi

# If $venv_dir is "-", then disable venv support
use_venv=1
if [[ $venv_dir == "-" ]]; then
  use_venv=0
fi

# Set defaults
# Install directory without trailing slash
if [[ -z "${install_dir}" ]]
then
    install_dir="$SCRIPT_DIR"
fi

# python3 executable
if [[ -z "${python_cmd}" ]]
then
    python_cmd="python3"
fi

# python3 venv without trailing slash (defaults to ${install_dir}/venv here: the fake is its own clone)
if [[ -z "${venv_dir}" ]] && [[ $use_venv -eq 1 ]]
then
    venv_dir="venv"
fi

if [[ -z "${LAUNCH_SCRIPT}" ]]
then
    LAUNCH_SCRIPT="${SCRIPT_DIR}/launch.py"
fi

# this script cannot be run as root by default
can_run_as_root=0

# read any command line flags to the webui.sh script
# (only leading flags: `webui.sh -f --port 7860` allows root, `webui.sh --port 7860 -f` does not)
while getopts "f" flag > /dev/null 2>&1
do
    case ${flag} in
        f) can_run_as_root=1;;
        *) break;;
    esac
done

# Disable sentry logging
export ERROR_REPORTING=FALSE

# Do not reinstall existing pip packages on Debian/Ubuntu
export PIP_IGNORE_INSTALLED=0

# Pretty print
delimiter="################################################################"

printf "\n%s\n" "${delimiter}"
printf "\e[1m\e[32mInstall script for stable-diffusion + Web UI\n"
printf "\e[1m\e[34mTested on Debian 11 (Bullseye)\e[0m"
printf "\n%s\n" "${delimiter}"

# Do not run as root
if [[ $(id -u) -eq 0 && can_run_as_root -eq 0 ]]
then
    printf "\n%s\n" "${delimiter}"
    printf "\e[1m\e[31mERROR: This script must not be launched as root, aborting...\e[0m"
    printf "\n%s\n" "${delimiter}"
    exit 1
else
    printf "\n%s\n" "${delimiter}"
    printf "Running on \e[1m\e[32m%s\e[0m user" "$(whoami)"
    printf "\n%s\n" "${delimiter}"
fi

if ! hash "${python_cmd}" &>/dev/null
then
    printf "\n%s\n" "${delimiter}"
    printf "\e[1m\e[31mERROR: %s is not installed, aborting...\e[0m" "${python_cmd}"
    printf "\n%s\n" "${delimiter}"
    exit 1
fi

if [[ $use_venv -eq 1 ]] && ! "${python_cmd}" -c "import venv" &>/dev/null
then
    printf "\n%s\n" "${delimiter}"
    printf "\e[1m\e[31mERROR: python3-venv is not installed, aborting...\e[0m"
    printf "\n%s\n" "${delimiter}"
    exit 1
fi

if [[ $use_venv -eq 1 ]] && [[ -z "${VIRTUAL_ENV}" ]];
then
    printf "\n%s\n" "${delimiter}"
    printf "Create and activate python venv"
    printf "\n%s\n" "${delimiter}"
    # A1111 cd's into ${install_dir}/${clone_dir} first; the fake resolves a relative venv_dir there instead.
    if [[ "${venv_dir}" != /* ]]; then
        venv_dir="${install_dir}/${venv_dir}"
    fi
    if [[ ! -d "${venv_dir}" ]]
    then
        "${python_cmd}" -m venv "${venv_dir}"
        first_launch=1
    fi
    # shellcheck source=/dev/null
    if [[ -f "${venv_dir}"/bin/activate ]]
    then
        source "${venv_dir}"/bin/activate
        # ensure use of python from venv
        python_cmd="${venv_dir}"/bin/python
    else
        printf "\n%s\n" "${delimiter}"
        printf "\e[1m\e[31mERROR: Cannot activate python venv, aborting...\e[0m"
        printf "\n%s\n" "${delimiter}"
        exit 1
    fi
else
    printf "\n%s\n" "${delimiter}"
    printf "python venv already activate or run without venv: ${VIRTUAL_ENV}"
    printf "\n%s\n" "${delimiter}"
fi

# Some forks' wrappers trap SIGTERM (to clean up, or by accident) and carry on with the loop:
# FAKE_WEBUI_TRAP_TERM=1 models that wrapper, the one that relaunches Python behind a careless kill.
if [[ "${FAKE_WEBUI_TRAP_TERM:-0}" == "1" ]]; then
    trap 'printf "webui.sh: SIGTERM received, carrying on\n"' TERM
fi

# A1111 checks tmp/restart relative to its cwd (the clone); the fake's tmp/ is $FAKE_WEBUI_STATE_DIR/tmp.
restart_file="${FAKE_WEBUI_STATE_DIR:-$SCRIPT_DIR}/tmp/restart"

KEEP_GOING=1
export SD_WEBUI_RESTART=tmp/restart
while [[ "$KEEP_GOING" -eq "1" ]]; do
    printf "\n%s\n" "${delimiter}"
    printf "Launching launch.py..."
    printf "\n%s\n" "${delimiter}"
    # Not exec: bash waits here as the parent of Python. launch.py removes tmp/restart when it starts
    # (and sets SD_WEBUI_RESTARTING=1 for itself), as A1111's prepare_environment does.
    "${python_cmd}" -u "${LAUNCH_SCRIPT}" "$@"

    if [[ ! -f "$restart_file" ]]; then
        KEEP_GOING=0
    fi
done
